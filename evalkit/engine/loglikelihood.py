"""Batched log-likelihood scoring: shared prefixes computed once, the LM head only where needed,
and (in deterministic mode) every sample's numbers independent of its batch.

Savings over a plain forward pass per request:
- Identical model inputs are run once (the MMLU choices " A".." D" after one question share a row;
  each request reads its own target at the same positions).
- A request may name a `shared_prefix` (a few-shot preamble common to a whole subject). Its key and
  value cache is computed once and every request that starts with it runs only its own suffix.
- Requests marked `share_context` (an item's choices) with a short context are packed into one
  row: the context once, then the choices as a token trie (leading tokens they share run once).
- The LM head runs only at continuation positions, each distinct one once, over fixed-size row and
  vocabulary chunks with an fp32 log-sum-exp (kernels/), queued across batches so its blocks are
  full, never materialising vocabulary logits for every position.

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
# Rows per LM-head block (see _HeadQueue).
HEAD_BLOCK_ROWS = 512


def length_bucket(n: int, *, fine: bool = False) -> int:
    """The padded length of an input of n tokens: n rounded up to a step of 1/8 of its power of two
    (at least 16), or with `fine` 1/16 of it (at least 8). A pure function of n, so the shape a
    request meets never depends on neighbours; padding wastes at most about 12% (fine: 6%, in
    more, smaller batches, which is what a CPU wants; a GPU pads each bucket's last batch with
    rows, so it wants fewer buckets)."""
    shift, least = (5, 8) if fine else (4, 16)
    step = max(least, 1 << max(0, n.bit_length() - shift))
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
    # A packed row holds one context followed by its continuations as a trie (see _packed_rows):
    # tree[i] is the index of the token before token i in its sequence (-1 for the first), and
    # positions[i] the position it would have there.
    tree: tuple[int, ...] | None = None
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
    """One row per context: the context, then the item's continuations as a token trie.

    Continuations (minus their last token, which is only predicted) are merged where they share
    leading tokens: "twist the lid" and "twist the lid firmly" run "twist the lid" once. Each trie
    token attends to the context and to its own ancestors only, at the position it would have
    after the context alone, so every continuation is scored as if it followed the context alone;
    but the context and every shared token run once, in one forward pass. The row depends only
    on the item (its context and its set of choices), never on other items or the suite's order.
    """
    packed: list[_Row] = []
    for context, members in to_pack.items():
        tokens, parents, positions = list(context), list(range(-1, len(context) - 1)), list(range(len(context)))
        # Trie node (a continuation's leading tokens) -> its index in the row. Continuations go in
        # sorted order so the row does not change when the suite's order does.
        node_at: dict[tuple[int, ...], int] = {(): len(context) - 1}
        for continuation in sorted({t for _, t in members}):
            for depth in range(1, len(continuation)):
                node = continuation[:depth]
                if node not in node_at:
                    node_at[node] = len(tokens)
                    tokens.append(node[-1])
                    parents.append(node_at[node[:-1]])
                    positions.append(len(context) + depth - 1)
        if len(tokens) > max_length:
            # Too long to pack: each continuation gets a row of its own.
            for index, continuation in members:
                inputs = list(context) + list(continuation[:-1])
                row = _Row(prefix=(), suffix=tuple(inputs))
                row.requests.append((index, continuation, tuple(range(len(context) - 1, len(inputs)))))
                packed.append(row)
            continue
        row = _Row(prefix=(), suffix=tuple(tokens), tree=tuple(parents), positions=tuple(positions))
        for index, continuation in members:
            # Token k of a continuation is predicted by the node of its first k tokens (the last
            # context token for k = 0).
            where = tuple(node_at[continuation[:k]] for k in range(len(continuation)))
            row.requests.append((index, continuation, where))
        packed.append(row)
    return packed


def _packed_attention(rows: Sequence[_Row], n_rows: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """[n_rows, 1, width, width] additive mask: a token sees itself and its ancestors in the row's
    tree (the whole context before it, then its own continuation's earlier tokens). Padding
    queries see themselves (their outputs are unused)."""
    allowed = torch.zeros((n_rows, width, width), dtype=torch.bool)
    for r in range(n_rows):
        row = rows[r] if r < len(rows) else rows[0]
        assert row.tree is not None
        for i, parent in enumerate(row.tree):
            # Parents come before their children, so the parent's row is already complete.
            if parent >= 0:
                allowed[r, i] = allowed[r, parent]
            allowed[r, i, i] = True
        n = len(row.tree)
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
    of one length bucket only, and with `pad_rows` (CUDA) always the same row count for that
    bucket; without it (CPU) the buckets are finer."""
    groups: dict[tuple[tuple[int, ...], tuple[int, ...], bool], list[_Row]] = {}
    for row in rows:
        # Packed rows need a 4D mask; they never share a batch with rows that do not.
        groups.setdefault((row.prefix, row.parent, row.tree is not None), []).append(row)
    batches: list[_Batch] = []
    for (prefix, _, _), members in groups.items():
        members = sorted(members, key=lambda r: -len(r.suffix))
        if deterministic:
            by_bucket: dict[int, list[_Row]] = {}
            for row in members:
                by_bucket.setdefault(length_bucket(len(row.suffix), fine=not pad_rows), []).append(row)
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
    """Score every request; yield (index in `requests`, result) as each batch's head rows are scored."""
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
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prefixes = _PrefixCache(body, device, batches)
    scorer = _HeadQueue(head, model.config)
    # Batches whose continuation positions are queued for the head: (served, slots, the index of
    # their first scored row, how many rows they queued).
    waiting: list[tuple[list[tuple[int, int]], list[int], int, int]] = []

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
        # Distinct (row, position, target) triples go through the head once: choices that share
        # leading tokens in a packed row's trie, or a request repeated, read the same numbers.
        # `slots` maps each request's tokens, in order, to their triple.
        triples: dict[tuple[int, int, int], int] = {}
        slots: list[int] = []
        served: list[tuple[int, int]] = []
        for r, row in enumerate(batch.rows):
            for index, row_targets, where in row.requests:
                for col, target in zip(where, row_targets):
                    slots.append(triples.setdefault((r, col, target), len(triples)))
                served.append((index, len(row_targets)))
        rows_index, cols, targets = (list(column) for column in zip(*triples)) if triples else ([], [], [])
        with torch.inference_mode():
            extra: dict[str, Any] = {}
            mask = attention.to(device)
            if p:
                extra[prefixes.keyword] = prefixes.expanded(prefix, parent, batch.n_rows)
                extra["position_ids"] = torch.arange(p, p + width, device=device).expand(batch.n_rows, width)
            elif batch.rows[0].tree is not None:
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
            waiting.append((served, slots, scorer.add(picked, targets), len(targets)))
            scorer.score(final=batch is batches[-1])
        if p:
            prefixes.release(prefix, parent)
        while waiting and waiting[0][2] + waiting[0][3] <= len(scorer.logprobs):
            served, slots, first, _ = waiting.pop(0)
            yield from _results(served, [first + k for k in slots], scorer)
            if progress is not None:
                progress(len(served))


def _results(
    served: list[tuple[int, int]], rows: list[int], scorer: _HeadQueue
) -> Iterator[tuple[int, LoglikelihoodResult]]:
    """(request index, result) for each request of a batch; rows[i]: the scored row of its i-th
    target token, requests' tokens in order."""
    offset = 0
    for index, k in served:
        mine = rows[offset : offset + k]
        # Summed on the host in float64, in token order: a fixed reduction order.
        total = 0.0
        for row in mine:
            total += scorer.logprobs[row]
        yield index, LoglikelihoodResult(
            logprob=total, is_greedy=all(scorer.greedy[row] for row in mine), n_tokens=k
        )
        offset += k


class _HeadQueue:
    """Continuation positions queued across batches and scored by the LM head in full blocks.

    The head (kernels/) pads rows to fixed blocks, so a row's numbers never depend on the others;
    a batch with few continuation tokens (a short MMLU question, a sparse length bucket) would
    otherwise pay for a mostly padded block on its own. Queued, only the run's last block is
    partly padding, and larger blocks run the CPU's matmuls faster (M = 512: ~160 GFLOP/s here
    against ~130 at 128)."""

    def __init__(self, head: torch.nn.Module, config: Any):
        self.head, self.block_rows = head, HEAD_BLOCK_ROWS
        self.logit_scale = getattr(config, "logit_scale", None)
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.hidden: list[torch.Tensor] = []
        self.targets: list[int] = []
        self.queued = 0
        self.logprobs: list[float] = []  # fp64 values of every row scored so far, in queue order
        self.greedy: list[bool] = []

    def add(self, hidden: torch.Tensor, targets: list[int]) -> int:
        """Queue rows; returns the index the first of them will have in `logprobs`."""
        first = len(self.logprobs) + self.queued
        if targets:
            self.hidden.append(hidden)
            self.targets += targets
            self.queued += len(targets)
        return first

    def score(self, *, final: bool) -> None:
        """Score every whole block queued (and, if final, the rest)."""
        n = self.queued if final else self.queued - self.queued % self.block_rows
        if n == 0:
            return
        hidden = torch.cat(self.hidden) if len(self.hidden) > 1 else self.hidden[0]
        logprob, greedy = head_logprobs(
            hidden[:n],
            self.head.weight,
            torch.tensor(self.targets[:n], dtype=torch.long, device=hidden.device),
            bias=getattr(self.head, "bias", None),
            logit_scale=self.logit_scale,
            softcap=self.softcap,
            row_chunk=self.block_rows,
        )
        self.logprobs += logprob.double().cpu().tolist()
        self.greedy += greedy.cpu().tolist()
        self.hidden = [hidden[n:]] if n < self.queued else []
        self.targets = self.targets[n:]
        self.queued -= n
