"""Cascade attention: a prompt prefix every running row shares is attended to once per step for all
rows together, not once per row.

GSM8K's 8-shot preamble is ~800 tokens; every row's own tokens (question, answer so far) are a few
hundred more. Keeping a copy of the preamble's keys and values in every row's cache makes each
decode step read them once per row, a memory-bound matrix-vector product per row that costs about
as much as the step's weight matmuls. Here the rows' caches hold only their own columns; the
shared prefix is kept once (`SharedPrefix`) and each layer computes

    attention over the prefix: one matrix product for all rows' queries (compute-bound),
    attention over each row's own columns: as before (with the padding mask),

and merges the two with their log-sum-exps, which is exactly softmax attention over the
concatenation (up to float rounding).

It is switched in by `cascade_attention(model)` around each model call that has a shared prefix:
the model's attention implementation becomes "evalkit_cascade" for that call (and goes back to
"sdpa" after), which forwards to transformers' own sdpa when a call carries no prefix.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch

NAME = "evalkit_cascade"


@dataclass
class SharedPrefix:
    """The keys and values of a prefix shared by every running row: per layer [1, kv_heads, P, d]
    (views into a one-row cache), and its token ids (to tell whether two prefixes are the same)."""

    ids: tuple[int, ...]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @classmethod
    def from_cache(cls, cache: Any, ids: tuple[int, ...]) -> SharedPrefix:
        n = len(ids)
        return cls(ids, [layer.keys[:, :, :n] for layer in cache.layers], [layer.values[:, :, :n] for layer in cache.layers])

    def truncated(self, n: int) -> SharedPrefix:
        return SharedPrefix(self.ids[:n], [k[:, :, :n] for k in self.keys], [v[:, :, :n] for v in self.values])


def _attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float,
    fused: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention and its log-sum-exp. query [B, kv_heads, M, d] (the query heads of a KV
    group folded into M), key/value [B or 1, kv_heads, S, d], mask broadcastable to
    [B, kv_heads, M, S] (True: may attend) or None. Returns (output [B, kv_heads, M, d] fp32,
    lse [B, kv_heads, M, 1] fp32). A query that may attend nothing (a padding position) gets
    output 0 and a finite lse: never NaN, which would spread through later layers. `fused`:
    torch's CPU kernel (the default on CPU) or plain matmuls (elsewhere)."""
    if fused if fused is not None else query.device.type == "cpu":
        # torch's CPU flash kernel returns the log-sum-exp sdpa throws away; it wants an
        # additive mask in the query's dtype.
        additive = None
        if mask is not None:
            additive = torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill_(~mask, float("-inf"))
        output, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key.expand(query.shape[0], -1, -1, -1), value.expand(query.shape[0], -1, -1, -1),
            0.0, False, attn_mask=additive, scale=scaling,
        )
        return output.float(), lse.float().unsqueeze(-1)
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)).mul_(scaling)
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    top = scores.amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    weights = scores.sub_(top).exp_()
    total = weights.sum(dim=-1, keepdim=True)
    output = torch.matmul(weights, value.float()) / total.clamp_min(torch.finfo(torch.float32).tiny)
    return output, top + total.clamp_min(torch.finfo(torch.float32).tiny).log()


def cascade_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    cascade: SharedPrefix | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature. query [B, H, q, d]; key/value [B, kv_heads, S, d]
    (the rows' own columns); attention_mask bool [B, 1, q, S] or None (then causal for q > 1)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cascade is None or not cascade.ids:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    layer = module.layer_idx
    if kwargs.get("position_bias") is not None:
        # A learned bias over every (query, key) pair cannot be split between the two parts:
        # give each row its copy of the prefix and let sdpa see the whole.
        prefix_len = cascade.keys[layer].shape[2]
        keys = torch.cat([cascade.keys[layer].expand(batch, -1, -1, -1), key], dim=2)
        values = torch.cat([cascade.values[layer].expand(batch, -1, -1, -1), value], dim=2)
        if attention_mask is not None:
            visible = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
            ones = visible.new_ones((*visible.shape[:-1], prefix_len))
            attention_mask = torch.cat([ones.expand(visible.shape[0], -1, -1, -1), visible], dim=-1)
        return sdpa_attention_forward(
            module, query, keys, values, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    group = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    # [B, kv_heads, group * q, d]: a KV group's query heads share its keys, so they are rows of one product.
    folded = query.reshape(batch, kv_heads, group * q_len, dim)
    if attention_mask is None:
        mask = None if q_len == 1 else torch.ones(q_len, key.shape[2], dtype=torch.bool, device=query.device).tril(key.shape[2] - q_len)
    elif attention_mask.dtype == torch.bool:
        mask = attention_mask
    else:
        mask = attention_mask == 0  # an additive mask: 0 where allowed
    if mask is not None and q_len > 1:
        # [B, 1, q, S] -> [B, 1, group * q, S]: every head of the group sees the same columns
        # (with one query the mask [B, 1, 1, S] broadcasts over the group as it is).
        mask = mask.reshape(-1, 1, q_len, mask.shape[-1]).repeat(1, 1, group, 1)
    own, own_lse = _attend(folded, key, value, mask, scale)
    # The prefix: every row's queries against one copy, one [kv_heads, B * group * q, P] product.
    flat = folded.transpose(0, 1).reshape(1, kv_heads, batch * group * q_len, dim)
    shared, shared_lse = _attend(flat, cascade.keys[layer], cascade.values[layer], None, scale)
    shared = shared.reshape(kv_heads, batch, group * q_len, dim).transpose(0, 1)
    shared_lse = shared_lse.reshape(kv_heads, batch, group * q_len, 1).transpose(0, 1)
    # Softmax over the concatenation: weigh each part by its share of the total exp-sum.
    top = torch.maximum(own_lse, shared_lse)
    own_weight, shared_weight = (own_lse - top).exp(), (shared_lse - top).exp()
    output = (own * own_weight + shared * shared_weight) / (own_weight + shared_weight)
    output = output.to(query.dtype).reshape(batch, heads, q_len, dim)
    return output.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, cascade_attention_forward)
    # The rows' own columns get the same mask sdpa would get.
    AttentionMaskInterface.register(NAME, sdpa_mask)


def supported(model: torch.nn.Module) -> bool:
    """Cascade attention replaces sdpa only: eager, flash or custom attention stay as they are."""
    return getattr(model.config, "_attn_implementation", None) == "sdpa"


@contextmanager
def cascade_attention(model: torch.nn.Module) -> Iterator[None]:
    """Within the block the model attends through `cascade_attention_forward`; the caller checks
    `supported` first. The model's own implementation is restored on exit."""
    _register()
    previous = model.config._attn_implementation
    model.config._attn_implementation = NAME
    try:
        yield
    finally:
        model.config._attn_implementation = previous
