"""Batched log-likelihood scoring: shared prefixes computed once, the LM head only where needed,
and (in deterministic mode) every sample's numbers independent of its batch.

Three savings over a plain forward pass per request:
- Identical model inputs are run once (the MMLU choices " A".." D" after one question share a row;
  each request reads its own target at the same positions).
- A request may name a `shared_prefix` (a few-shot preamble common to a whole subject). Its key and
  value cache is computed once and every request that starts with it runs only its own suffix.
- The LM head runs only at continuation positions, over fixed-size row and vocabulary chunks with
  an fp32 log-sum-exp (kernels/), never materialising vocabulary logits for every position.

Deterministic mode (the default) fixes every shape a request meets from the request alone: its
suffix is padded to a length bucket of its own length, on CUDA batches hold a fixed number of rows
(padded with copies), the prefix is computed alone at its exact length, and the head runs in fixed
row chunks. Whatever the batch size, neighbours or order, a request's log-likelihood is the same
bits; every report's invariance self-test checks it on the machine that ran.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from evalkit.engine.kernels import head_logprobs
from evalkit.engine.modeling import body_and_head, cache_keyword
from evalkit.engine.requests import LoglikelihoodRequest, LoglikelihoodResult
from evalkit.engine.tokenize import encode, encode_pair

# A shared prefix shorter than this is not worth a separate pass (the MMLU zero-shot description,
# about 16 tokens, is recomputed with each question instead).
MIN_SHARED_PREFIX_TOKENS = 48
# A shared context must add at least this many tokens to the shared prefix to get its own pass.
MIN_SHARED_CONTEXT_TOKENS = 8


def length_bucket(n: int) -> int:
    """The padded length of an input of n tokens: n rounded up to a step of 1/8 of its power of two
    (at least 16). A pure function of n, so the shape a request meets never depends on neighbours;
    padding wastes at most about 12%."""
    step = max(16, 1 << max(0, n.bit_length() - 4))
    return -(-n // step) * step


@dataclass
class _Row:
    """One distinct model input: prefix ids (shared, possibly empty) + suffix ids, and the
    requests that read targets off it. parent: a shorter shared prefix the prefix extends (the
    few-shot preamble under an item's context), or empty."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    parent: tuple[int, ...] = ()
    # (request index, target ids, the suffix positions that predict them)
    requests: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    # A packed row holds one context followed by several continuations (see _packed_rows):
    # segments[i] is -1 for context tokens, j for continuation j; positions restart after the context.
    segments: tuple[int, ...] | None = None
    positions: tuple[int, ...] | None = None


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_rows(
    tokenizer: Any, requests: Sequence[LoglikelihoodRequest], max_length: int
) -> list[_Row]:
    """Tokenize as lm-eval does, split each input at its shared prefix, merge identical inputs.

    Where a request's input splits depends on that request alone: the longest common token prefix
    of its input and its `shared_prefix` text's tokens (tokenizers may merge across the boundary,
    so the split can sit a token or two before the text's end), kept only if long enough and if
    every target position stays in the suffix.
    """
    prefix_ids: dict[str, list[int]] = {}
    rows: dict[tuple[tuple[int, ...], tuple[int, ...]], _Row] = {}
    to_pack: dict[tuple[int, ...], list[tuple[int, tuple[int, ...]]]] = {}
    for index, request in enumerate(requests):
        context_ids, continuation_ids = encode_pair(tokenizer, request.context, request.continuation)
        if continuation_ids:
            whole = (context_ids + continuation_ids)[-(max_length + 1):]
            # The context is at least one token, so len(whole) >= 2; a continuation longer than the
            # window keeps only the tokens the window can predict.
            inputs, targets = whole[:-1], continuation_ids[-(len(whole) - 1):]
        else:
            inputs, targets = context_ids[-max_length:], []
        # Every target position must stay in the suffix.
        most = len(inputs) - max(1, len(targets))
        split = 0
        if request.shared_prefix:
            if request.shared_prefix not in prefix_ids:
                prefix_ids[request.shared_prefix] = encode(tokenizer, request.shared_prefix)
            split = min(_common_prefix_length(prefix_ids[request.shared_prefix], inputs), most)
            if split < MIN_SHARED_PREFIX_TOKENS:
                split = 0
        parent_split = 0
        if request.share_context and continuation_ids:
            context_split = min(_common_prefix_length(context_ids, inputs), most)
            if context_split >= max(split + MIN_SHARED_CONTEXT_TOKENS, MIN_SHARED_PREFIX_TOKENS):
                parent_split, split = split, context_split
        if request.share_context and split == 0 and continuation_ids and len(context_ids) + len(continuation_ids) <= max_length:
            # A short context shared by several multi-token choices: pack them into one row.
            to_pack.setdefault(tuple(context_ids), []).append((index, tuple(continuation_ids)))
            continue
        key = (tuple(inputs[:split]), tuple(inputs[split:]))
        row = rows.setdefault(key, _Row(prefix=key[0], suffix=key[1], parent=tuple(inputs[:parent_split])))
        n = len(row.suffix)
        row.requests.append((index, tuple(targets), tuple(range(n - len(targets), n))))
    return list(rows.values()) + _packed_rows(to_pack, max_length)


def _packed_rows(
    to_pack: dict[tuple[int, ...], list[tuple[int, tuple[int, ...]]]], max_length: int
) -> list[_Row]:
    """One row per context: the context, then each distinct continuation (minus its last token),
    each attending to the context and to itself only, its positions restarting after the context.
    Every continuation is scored exactly as if it followed the context alone, but the context runs
    once, in one forward pass with its siblings; no per-item prefix pass, no padding between them.
    The row depends only on the item (its context and its choices), never on other items."""
    packed: list[_Row] = []
    for context, members in to_pack.items():
        # Sorted, not in arrival order: the row must not change when the suite's order does.
        continuations = sorted({t for _, t in members})
        tokens, segments, positions = list(context), [-1] * len(context), list(range(len(context)))
        starts = {}
        for j, continuation in enumerate(continuations):
            starts[continuation] = len(tokens)
            tokens += continuation[:-1]
            segments += [j] * (len(continuation) - 1)
            positions += range(len(context), len(context) + len(continuation) - 1)
        if len(tokens) > max_length:
            # Too long to pack: each continuation gets a row of its own.
            for index, continuation in members:
                inputs = list(context) + list(continuation[:-1])
                row = _Row(prefix=(), suffix=tuple(inputs))
                row.requests.append((index, continuation, tuple(range(len(context) - 1, len(inputs)))))
                packed.append(row)
            continue
        row = _Row(prefix=(), suffix=tuple(tokens), segments=tuple(segments), positions=tuple(positions))
        for index, continuation in members:
            start = starts[continuation]
            # The first token is predicted by the last context token, the rest inside the segment.
            where = (len(context) - 1, *range(start, start + len(continuation) - 1))
            row.requests.append((index, continuation, where))
        packed.append(row)
    return packed


def _packed_attention(rows: Sequence[_Row], n_rows: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """[n_rows, 1, width, width] additive mask: causal, and a continuation token sees the context
    and its own continuation only. Padding queries see themselves (their outputs are unused)."""
    allowed = torch.zeros((n_rows, width, width), dtype=torch.bool)
    for r in range(n_rows):
        row = rows[r] if r < len(rows) else rows[0]
        segments = torch.tensor(row.segments)
        n = len(segments)
        same = (segments[:, None] == segments[None, :]) | (segments[None, :] == -1)
        allowed[r, :n, :n] = torch.tril(same)
        allowed[r, n:, n:] = torch.eye(width - n, dtype=torch.bool)
    mask = torch.zeros((n_rows, 1, width, width), dtype=dtype)
    return mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)


@dataclass(frozen=True)
class _Batch:
    rows: tuple[_Row, ...]
    width: int  # padded suffix length
    n_rows: int  # rows in the tensor (>= len(rows) in deterministic mode)


def plan_batches(
    rows: Sequence[_Row], *, max_rows: int, token_budget: int, deterministic: bool, pad_rows: bool
) -> list[_Batch]:
    """Batches of rows sharing one prefix, longest first. In deterministic mode a batch holds rows
    of one length bucket only, and with `pad_rows` always the same row count for that bucket."""
    groups: dict[tuple[tuple[int, ...], tuple[int, ...], bool], list[_Row]] = {}
    for row in rows:
        # Packed rows need a 4D mask; they never share a batch with rows that do not.
        groups.setdefault((row.prefix, row.parent, row.segments is not None), []).append(row)
    batches: list[_Batch] = []
    for (prefix, _, _), members in groups.items():
        members = sorted(members, key=lambda r: -len(r.suffix))
        if deterministic:
            by_bucket: dict[int, list[_Row]] = {}
            for row in members:
                by_bucket.setdefault(length_bucket(len(row.suffix)), []).append(row)
            for width, bucket in by_bucket.items():
                n_rows = max(1, min(max_rows, token_budget // (len(prefix) + width)))
                for start in range(0, len(bucket), n_rows):
                    chunk = tuple(bucket[start:start + n_rows])
                    batches.append(_Batch(chunk, width, n_rows if pad_rows else len(chunk)))
        else:
            current: list[_Row] = []
            for row in members:
                width = len(current[0].suffix) if current else len(row.suffix)
                if current and (len(current) >= max_rows or (len(current) + 1) * (len(prefix) + width) > token_budget):
                    batches.append(_Batch(tuple(current), len(current[0].suffix), len(current)))
                    current = []
                current.append(row)
            if current:
                batches.append(_Batch(tuple(current), len(current[0].suffix), len(current)))
    return batches


class _PrefixCache:
    """Key/value caches of shared prefixes, computed alone (batch of one, exact length), so their
    bits depend on the prefix only. A prefix with a parent is its parent's cache extended by the
    remaining tokens. A cache is kept while batches that use it, directly or through a child,
    remain."""

    def __init__(self, body: torch.nn.Module, device: torch.device, batches: Sequence["_Batch"]):
        self.body = body
        self.device = device
        self.keyword = cache_keyword(body)
        self.cached: dict[tuple[int, ...], Any] = {}
        self.remaining: dict[tuple[int, ...], int] = {}
        for batch in batches:
            for prefix in {batch.rows[0].prefix, batch.rows[0].parent} - {()}:
                self.remaining[prefix] = self.remaining.get(prefix, 0) + 1

    def _cache(self, prefix: tuple[int, ...], parent: tuple[int, ...]) -> Any:
        if prefix in self.cached:
            return self.cached[prefix]
        from transformers import DynamicCache

        start = len(parent)
        cache = copy.deepcopy(self._cache(parent, ())) if parent else DynamicCache(config=self.body.config)
        ids = torch.tensor([prefix[start:]], device=self.device)
        self.body(
            input_ids=ids,
            attention_mask=torch.ones((1, len(prefix)), dtype=torch.long, device=self.device),
            position_ids=torch.arange(start, len(prefix), device=self.device)[None],
            use_cache=True,
            **{self.keyword: cache},
        )
        self.cached[prefix] = cache
        return cache

    def expanded(self, prefix: tuple[int, ...], parent: tuple[int, ...], n_rows: int) -> Any:
        """A copy of the prefix's cache repeated for n_rows rows."""
        cache = copy.deepcopy(self._cache(prefix, parent))
        cache.batch_repeat_interleave(n_rows)
        return cache

    def release(self, prefix: tuple[int, ...], parent: tuple[int, ...]) -> None:
        for key in {prefix, parent} - {()}:
            self.remaining[key] -= 1
            if self.remaining[key] == 0:
                self.cached.pop(key, None)


def iter_loglikelihood(
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[LoglikelihoodRequest],
    *,
    max_rows: int,
    token_budget: int,
    max_length: int,
    deterministic: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, LoglikelihoodResult]]:
    """Score every request; yield (index in `requests`, result) as each batch completes."""
    rows = plan_rows(tokenizer, requests, max_length)
    device = next(model.parameters()).device
    # GPU matmul libraries pick kernels (split-K, tile sizes) by the row count, so on CUDA every
    # batch of a bucket gets the same row count. CPU kernels here give each row the same bits
    # whatever the row count (the invariance self-test checks it on every run), so CPU batches
    # are not padded with dummy rows, which would waste up to max_rows-1 rows per sparse bucket.
    pad_rows = deterministic and device.type == "cuda"
    batches = plan_batches(
        rows, max_rows=max_rows, token_budget=token_budget, deterministic=deterministic, pad_rows=pad_rows
    )
    body, head = body_and_head(model)
    config = model.config
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prefixes = _PrefixCache(body, device, batches)

    for batch in batches:
        prefix, parent = batch.rows[0].prefix, batch.rows[0].parent
        p, width = len(prefix), batch.width
        # Right padding: with causal attention, pads after a row's last token cannot change it.
        # Rows beyond the real ones repeat the first row; their results are dropped.
        input_ids = torch.full((batch.n_rows, width), pad_id, dtype=torch.long)
        attention = torch.zeros((batch.n_rows, p + width), dtype=torch.long)
        attention[:, :p] = 1
        for r in range(batch.n_rows):
            row = batch.rows[r] if r < len(batch.rows) else batch.rows[0]
            input_ids[r, : len(row.suffix)] = torch.tensor(row.suffix)
            attention[r, p : p + len(row.suffix)] = 1
        rows_index, cols, targets, served = [], [], [], []
        for r, row in enumerate(batch.rows):
            for index, row_targets, where in row.requests:
                rows_index += [r] * len(row_targets)
                cols += where
                targets += row_targets
                served.append((index, len(row_targets)))
        with torch.inference_mode():
            extra: dict[str, Any] = {}
            mask = attention.to(device)
            if p:
                extra[prefixes.keyword] = prefixes.expanded(prefix, parent, batch.n_rows)
                extra["position_ids"] = torch.arange(p, p + width, device=device).expand(batch.n_rows, width)
            elif batch.rows[0].segments is not None:
                mask = _packed_attention(batch.rows, batch.n_rows, width, next(model.parameters()).dtype).to(device)
                position_ids = torch.zeros((batch.n_rows, width), dtype=torch.long)
                for r in range(batch.n_rows):
                    row = batch.rows[r] if r < len(batch.rows) else batch.rows[0]
                    position_ids[r, : len(row.positions)] = torch.tensor(row.positions)
                extra["position_ids"] = position_ids.to(device)
            hidden = body(
                input_ids=input_ids.to(device), attention_mask=mask, use_cache=bool(p), **extra
            ).last_hidden_state
            picked = hidden[torch.tensor(rows_index, device=device), torch.tensor(cols, device=device)]
            token_logprobs, token_greedy = head_logprobs(
                picked,
                head.weight,
                torch.tensor(targets, dtype=torch.long, device=device),
                bias=getattr(head, "bias", None),
                logit_scale=getattr(config, "logit_scale", None),
                softcap=getattr(config, "final_logit_softcapping", None),
            )
        if p:
            prefixes.release(prefix, parent)
        logprob_list = token_logprobs.double().cpu().tolist()
        greedy_list = token_greedy.cpu().tolist()
        offset = 0
        for index, k in served:
            # Summed on the host in float64, in token order: a fixed reduction order.
            total = 0.0
            for value in logprob_list[offset : offset + k]:
                total += value
            yield index, LoglikelihoodResult(logprob=total, is_greedy=all(greedy_list[offset : offset + k]), n_tokens=k)
            offset += k
        if progress is not None:
            progress(len(served))
