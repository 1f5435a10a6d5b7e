"""How many tokens fit in one batch: a memory model, not trial and out-of-memory.

Per token in flight the engine holds the key/value cache of every layer and the transient
activations of one layer at a time (the widest is the MLP's intermediate projection, plus the
residual stream and attention projections). Logits never count: the head runs on continuation
positions only, in fixed chunks. On CUDA the budget is what free device memory allows after a
safety margin; on CPU, where memory is plentiful and a large batch buys nothing (the matmuls are
already compute-bound at a few thousand tokens), it is a fixed default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CPU_TOKEN_BUDGET = 16384
# Share of free GPU memory the batch may take: the rest absorbs allocator fragmentation and the
# head's transient chunk.
CUDA_MEMORY_SHARE = 0.7
MAX_TOKEN_BUDGET = 1 << 20


@dataclass(frozen=True)
class TokenBudget:
    tokens: int
    reason: str


def bytes_per_token(config: object, dtype: torch.dtype) -> int:
    """Memory one token in flight needs: K and V of every layer, and one layer's activations."""
    element = torch.tensor([], dtype=dtype).element_size()
    hidden = int(getattr(config, "hidden_size"))
    layers = int(getattr(config, "num_hidden_layers"))
    heads = int(getattr(config, "num_attention_heads"))
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    intermediate = int(getattr(config, "intermediate_size", None) or 4 * hidden)
    kv_cache = 2 * layers * kv_heads * head_dim * element
    # residual + normed copy + q/k/v/o projections + gate, up and their product in the MLP
    activations = (4 * hidden + 3 * intermediate) * element
    return kv_cache + activations


def choose_token_budget(model: torch.nn.Module, requested: int | None) -> TokenBudget:
    if requested is not None:
        return TokenBudget(requested, "set by --token-budget")
    parameter = next(model.parameters())
    if parameter.device.type != "cuda":
        return TokenBudget(CPU_TOKEN_BUDGET, f"CPU default ({CPU_TOKEN_BUDGET} tokens)")
    free, _ = torch.cuda.mem_get_info(parameter.device)
    per_token = bytes_per_token(model.config, parameter.dtype)
    tokens = int(free * CUDA_MEMORY_SHARE // per_token)
    tokens = max(256, min(tokens, MAX_TOKEN_BUDGET))
    return TokenBudget(
        tokens,
        f"{CUDA_MEMORY_SHARE:.0%} of {free / 2**30:.1f} GiB free on the GPU at {per_token} bytes per token",
    )
