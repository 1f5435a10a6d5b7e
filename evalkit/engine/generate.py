"""Generation with continuous batching: a fixed number of slots over one key/value cache.

Prompts wait in a queue, longest first (so that prompts prefilled together need little padding).
Whenever enough slots are free, the next prompts are prefilled together and join the running rows
(their caches merged, right-aligned: see kvcache.py); then every running row decodes one token per
step. A row that emits end-of-sequence, completes a stop string or reaches its token limit leaves at
once, and padding columns no remaining row needs are dropped. Rows finishing at different lengths
(GSM8K answers run from 50 to 256 tokens) therefore never hold the batch hostage, which is where a
padded-batch `generate` loses most of its time.

A prompt prefix the rows share (a few-shot preamble, a chat template's system turn) is computed
once and kept once: rows attend to it through cascade attention (cascade.py) rather than each
carrying a copy that every decode step would read again.

Each row's next token is the argmax of its logits (greedy) or a draw from its own seeded stream
(sampling.py), so what a row generates never depends on its neighbours beyond float rounding.
Models whose cache is not plain full attention (sliding windows) fall back to batch-by-batch
decoding with transformers' own cache; the results are the same, only slower.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from transformers import DynamicCache

from evalkit.engine import cascade, kvcache
from evalkit.engine.cascade import SharedPrefix
from evalkit.engine.modeling import cache_keyword
from evalkit.engine.requests import FinishReason, GenerateRequest, GenerateResult
from evalkit.engine.sampling import SamplingParams, TokenStream, sample_token
from evalkit.engine.tokenize import chat_prompt, encode
from evalkit.errors import EngineError


def eos_token_ids(model: torch.nn.Module, tokenizer: Any) -> frozenset[int]:
    """End-of-sequence ids: the generation config's (what `generate` stops on) and the tokenizer's."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def prompt_ids(tokenizer: Any, request: GenerateRequest, max_length: int) -> list[int]:
    text = chat_prompt(tokenizer, request.prompt, request.system) if request.chat else request.prompt
    ids = encode(tokenizer, text)
    room = max_length - request.max_new_tokens
    if room < 1:
        raise EngineError(
            f"max_new_tokens={request.max_new_tokens} leaves no room for the prompt in the model's "
            f"{max_length}-token window; lower the suite's max_new_tokens"
        )
    # Keep the end of a too-long prompt: it holds the question and the assistant turn.
    return ids[-room:]


# A prefix at least this long, shared by every prompt of a prefill group, is computed only once.
MIN_SHARED_PREFIX = 16


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every prompt has in common, leaving each prompt at least one token
    of its own (the logits at its last position give its first new token)."""
    most = min(len(p) for p in prompts) - 1
    return max(0, min([most] + [_common_length(prompts[0], p) for p in prompts[1:]]))


def _cut_at_stop(text: str, stop: Sequence[str]) -> str | None:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else None


class _Row:
    """One request being decoded."""

    def __init__(self, index: int, request: GenerateRequest, prompt_length: int):
        self.index = index
        self.request = request
        self.prompt_length = prompt_length
        self.generated: list[int] = []
        self.finish: FinishReason | None = None
        self.text = ""
        self.params = SamplingParams(request.temperature, request.top_p, request.top_k)
        self.stream = None if self.params.greedy else TokenStream(request.seed)
        # Enough trailing tokens to contain any stop string (a token decodes to at least one
        # character, bar special tokens): checking only them keeps each step O(1), not O(length).
        self.stop_window = max((len(s) for s in request.stop), default=0) + 4

    @property
    def remaining(self) -> int:
        return self.request.max_new_tokens - len(self.generated)

    def push(self, token: int, tokenizer: Any, eos_ids: frozenset[int]) -> None:
        self.generated.append(token)
        stop = self.request.stop
        if token in eos_ids:
            self.finish = "eos"
            self.text = tokenizer.decode(self.generated[:-1], skip_special_tokens=True)
            return
        if stop:
            tail = tokenizer.decode(self.generated[-self.stop_window:], skip_special_tokens=True)
            if any(s and s in tail for s in stop):
                cut = _cut_at_stop(tokenizer.decode(self.generated, skip_special_tokens=True), stop)
                if cut is not None:
                    self.finish, self.text = "stop", cut
                    return
        if self.remaining <= 0:
            text = tokenizer.decode(self.generated, skip_special_tokens=True)
            cut = _cut_at_stop(text, stop) if stop else None
            self.finish, self.text = ("stop", cut) if cut is not None else ("length", text)

    def result(self) -> GenerateResult:
        assert self.finish is not None
        return GenerateResult(text=self.text, token_ids=tuple(self.generated), finish_reason=self.finish)


@dataclass
class GenerationStats:
    """Where generation time went (filled in by iter_generate when given one): benchmarks divide
    useful work by these times; `decode_row_tokens` counts one token per running row per step."""

    prefills: int = 0
    prefill_tokens: int = 0  # tokens actually computed (a shared prefix counts once per prefill)
    prefill_seconds: float = 0.0
    decode_steps: int = 0
    decode_row_tokens: int = 0
    decode_seconds: float = 0.0


@dataclass
class _Running:
    """The rows in the slots and their shared state.

    cache holds `width` columns per row; attention [rows, width] marks each row's real columns;
    tokens [rows] are the tokens chosen last (not yet in the cache); positions [rows] are theirs.
    prefix: a prompt prefix every row starts with, kept once and attended to by cascade attention
    (cascade.py); the rows' own columns follow it.
    """

    rows: list[_Row]
    cache: DynamicCache
    attention: torch.Tensor
    tokens: torch.Tensor
    positions: torch.Tensor
    prefix: SharedPrefix | None = None

    def keep(self, kept: list[int]) -> None:
        """Keep only the rows at positions `kept`."""
        if len(kept) == len(self.rows):
            return
        if not kept:
            self.rows = []
            return
        if isinstance(self.cache.layers[0], kvcache.SlotLayer):
            # Rows leaving the first len(kept) slots are replaced by kept rows from the end: only
            # those rows' caches move, instead of a copy of every row (a row order change is
            # harmless: each row carries its own state).
            n, kept_set = len(kept), set(kept)
            holes = [r for r in range(n) if r not in kept_set]
            movers = [r for r in kept if r >= n]
            kvcache.move_rows(self.cache, holes, movers, n)
            order = list(range(n))
            for hole, mover in zip(holes, movers):
                order[hole] = mover
            kept = order
        else:
            self.cache.batch_select_indices(torch.tensor(kept, dtype=torch.long, device=self.attention.device))
        selected = torch.tensor(kept, dtype=torch.long, device=self.attention.device)
        self.rows = [self.rows[r] for r in kept]
        self.attention, self.tokens, self.positions = (
            self.attention[selected], self.tokens[selected], self.positions[selected]
        )
        if isinstance(self.cache.layers[0], kvcache.SlotLayer):
            # Columns that are padding for every remaining row: drop them.
            unused = int(self.attention.any(dim=0).to(torch.int8).argmax())
            if unused:
                kvcache.drop_leading(self.cache, unused)
                self.attention = self.attention[:, unused:]


def _share_prefix(a: _Running, b: _Running) -> SharedPrefix | None:
    """Make a and b attend to one shared prefix: the longest both start with. The part of a row's
    prefix beyond it is copied into that row's own columns (rare: groups of one suite share the
    same preamble)."""
    if a.prefix is not None and b.prefix is not None and a.prefix.ids == b.prefix.ids:
        return a.prefix
    common = _common_length(a.prefix.ids, b.prefix.ids) if a.prefix is not None and b.prefix is not None else 0
    for running in (a, b):
        prefix = running.prefix
        if prefix is not None and len(prefix.ids) > common:
            kvcache.prepend(running.cache, prefix.keys, prefix.values, common)
            extra = running.attention.new_ones((len(running.rows), len(prefix.ids) - common))
            running.attention = torch.cat([extra, running.attention], dim=1)
    shared = a.prefix.truncated(common) if a.prefix is not None and common else None
    a.prefix = b.prefix = shared
    return shared


def _merge(a: _Running, b: _Running) -> _Running:
    prefix = _share_prefix(a, b)
    width = max(a.attention.shape[1], b.attention.shape[1])
    room = max(r.remaining for r in a.rows + b.rows)
    cache = kvcache.merge([a.cache, b.cache], capacity=width + room)
    attention = a.attention.new_zeros((len(a.rows) + len(b.rows), width))
    attention[: len(a.rows), width - a.attention.shape[1]:] = a.attention
    attention[len(a.rows):, width - b.attention.shape[1]:] = b.attention
    return _Running(
        a.rows + b.rows, cache, attention, torch.cat([a.tokens, b.tokens]), torch.cat([a.positions, b.positions]),
        prefix,
    )


class _Scheduler:
    def __init__(
        self, model: torch.nn.Module, tokenizer: Any, requests: Sequence[GenerateRequest],
        max_rows: int, token_budget: int, max_length: int, stats: GenerationStats,
    ):
        self.model, self.tokenizer, self.requests = model, tokenizer, requests
        self.stats = stats
        self.max_rows, self.token_budget = max_rows, token_budget
        self.prompts = [prompt_ids(tokenizer, r, max_length) for r in requests]
        self.device = next(model.parameters()).device
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self.cache_arg = cache_keyword(model)
        self.continuous = kvcache.slot_cache(model) is not None
        # Whether shared prefixes are attended to once (cascade.py) or copied into every row.
        self.cascade = self.continuous and cascade.supported(model)
        # Refill when a quarter of the slots are free: one prefill serves several rows.
        self.refill_at = max(1, max_rows // 4)
        self.queue = deque(sorted(range(len(requests)), key=lambda i: (-len(self.prompts[i]), i)))
        # The last shared prefix computed: its token ids and its one-row cache.
        self.prefix_ids: list[int] = []
        self.prefix_cache: DynamicCache | None = None

    def need(self, i: int) -> int:
        """Cache columns request i can occupy."""
        return len(self.prompts[i]) + self.requests[i].max_new_tokens

    def admit(self, running: _Running | None) -> list[int]:
        """The next prompts to prefill, within the free slots and the token budget."""
        n_running = len(running.rows) if running else 0
        free = self.max_rows - n_running
        if not self.queue or free <= 0:
            return []
        if running is not None and (not self.continuous or free < min(self.refill_at, len(self.queue))):
            return []
        widest = max((r.prompt_length + r.request.max_new_tokens for r in running.rows), default=0) if running else 0
        group: list[int] = []
        while self.queue and len(group) < free:
            candidate = self.queue[0]
            widest_then = max(widest, self.need(candidate))
            if (n_running + len(group)) and (n_running + len(group) + 1) * widest_then > self.token_budget:
                break
            group.append(self.queue.popleft())
            widest = widest_then
        return group

    def choose(self, rows: list[_Row], logits: torch.Tensor) -> list[int]:
        tokens = logits.float().argmax(dim=-1).tolist()
        for r, row in enumerate(rows):
            if row.stream is not None:
                tokens[r] = sample_token(logits[r], row.params, row.stream.uniform())
        return tokens

    def step_rows(self, running: _Running, logits: torch.Tensor) -> Iterator[_Row]:
        """Choose each row's next token; finished rows leave `running` and are yielded."""
        tokens = self.choose(running.rows, logits)
        kept: list[int] = []
        for r, (row, token) in enumerate(zip(running.rows, tokens)):
            row.push(token, self.tokenizer, self.eos_ids)
            if row.finish is None:
                kept.append(r)
            else:
                yield row
        running.tokens = torch.tensor(tokens, device=self.device)
        running.positions = running.positions + 1
        running.keep(kept)

    def plan_prefix(self, prompts: list[list[int]]) -> tuple[int, bool]:
        """(tokens of a prefix every prompt of the group shares, whether it is the cached one).

        The cached prefix (from an earlier prefill) is reused when it covers at least as much as
        a fresh one would; a fresh one is the longest prefix common to the group and the next
        prompt in the queue, so that even one-prompt groups (one free slot) share a preamble."""
        shortest = min(len(p) for p in prompts) - 1
        reuse = min(min(_common_length(p, self.prefix_ids) for p in prompts), shortest)
        peers = prompts + ([self.prompts[self.queue[0]]] if self.queue else [])
        fresh = min(shared_prefix_length(peers), shortest) if len(peers) > 1 else 0
        if reuse >= MIN_SHARED_PREFIX and reuse >= fresh:
            return reuse, True
        return (fresh, False) if fresh >= MIN_SHARED_PREFIX else (0, False)

    def prefill(self, group: list[int]) -> tuple[_Running, torch.Tensor]:
        """Prefill the group's prompts together. A prefix they all share (a few-shot preamble, a
        chat template's system turn) is computed once, kept for later groups, and copied to every
        row; then only the rest of each prompt is computed, left-padded, after it: the padding sits
        between the shared prefix and a row's own tokens, where the attention mask hides it."""
        prompts = [self.prompts[i] for i in group]
        shared, cached = self.plan_prefix(prompts) if self.continuous else (0, False)
        tails = [p[shared:] for p in prompts]
        width = max(len(t) for t in tails)
        input_ids = torch.full((len(group), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(group), width), dtype=torch.long)
        for r, tail in enumerate(tails):
            input_ids[r, width - len(tail):] = torch.tensor(tail)
            attention[r, width - len(tail):] = 1
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        # Positions as transformers' generate computes them for left padding, after the prefix.
        positions = (shared + attention.cumsum(-1) - 1).masked_fill(attention == 0, 1)
        capacity = shared + width + max(self.requests[i].max_new_tokens for i in group)
        if shared and not cached:
            prefix_cache = kvcache.slot_cache(self.model)
            assert prefix_cache is not None
            self.model(
                input_ids=torch.tensor([prompts[0][:shared]], device=self.device),
                position_ids=torch.arange(shared, device=self.device)[None],
                use_cache=True, logits_to_keep=1, **{self.cache_arg: prefix_cache},
            )
            self.prefix_ids, self.prefix_cache = prompts[0][:shared], prefix_cache
            self.stats.prefill_tokens += shared
        prefix = None
        if shared and self.cascade:
            # The rows' caches hold their own columns only; the prefix is attended to once.
            assert self.prefix_cache is not None
            prefix = SharedPrefix.from_cache(self.prefix_cache, tuple(self.prefix_ids[:shared]))
            cache = kvcache.slot_cache(self.model)
            assert cache is not None
            kvcache.reserve(cache, capacity - shared)
        elif shared:
            assert self.prefix_cache is not None
            cache = kvcache.from_prefix(self.prefix_cache, shared, len(group), capacity)
            attention = torch.cat([attention.new_ones((len(group), shared)), attention], dim=1)
        else:
            cache = kvcache.slot_cache(self.model) if self.continuous else DynamicCache(config=self.model.config)
            assert cache is not None
            kvcache.reserve(cache, capacity)
        logits = self.forward(
            prefix, input_ids=input_ids, attention_mask=attention, position_ids=positions,
            use_cache=True, logits_to_keep=1, **{self.cache_arg: cache},
        ).logits[:, -1]
        self.stats.prefill_tokens += sum(len(t) for t in tails)
        rows = [_Row(i, self.requests[i], len(self.prompts[i])) for i in group]
        # positions[:, -1] is the last prompt token's; step_rows advances it to the new token's.
        running = _Running(rows, cache, attention, input_ids[:, -1], positions[:, -1], prefix)
        return running, logits

    def decode(self, running: _Running) -> torch.Tensor:
        running.attention = torch.cat([running.attention, running.attention.new_ones((len(running.rows), 1))], dim=1)
        return self.forward(
            running.prefix, input_ids=running.tokens[:, None], attention_mask=running.attention,
            position_ids=running.positions[:, None], use_cache=True, **{self.cache_arg: running.cache},
        ).logits[:, -1]

    def forward(self, prefix: SharedPrefix | None, **inputs: Any) -> Any:
        """The model on `inputs`, attending to `prefix` (if any) through cascade attention. The
        attention implementation is switched for this call only: between calls (and while the
        caller holds a yielded result) the model is as it was loaded."""
        if prefix is None:
            return self.model(**inputs)
        with cascade.cascade_attention(self.model):
            return self.model(cascade=prefix, **inputs)

    def run(self) -> Iterator[_Row]:
        running: _Running | None = None
        with torch.inference_mode():
            while self.queue or running is not None:
                group = self.admit(running)
                if group:
                    start = time.perf_counter()
                    joining, logits = self.prefill(group)
                    first = list(self.step_rows(joining, logits))  # reads the logits: the time is spent
                    self.stats.prefills += 1
                    self.stats.prefill_seconds += time.perf_counter() - start
                    yield from first
                    if joining.rows:
                        running = joining if running is None else _merge(running, joining)
                if running is None:
                    continue
                start, n_rows = time.perf_counter(), len(running.rows)
                finished = list(self.step_rows(running, self.decode(running)))
                self.stats.decode_steps += 1
                self.stats.decode_row_tokens += n_rows
                self.stats.decode_seconds += time.perf_counter() - start
                yield from finished
                if not running.rows:
                    running = None


def iter_generate(
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[GenerateRequest],
    *,
    max_rows: int,
    token_budget: int,
    max_length: int,
    progress: Callable[[int], None] | None = None,
    stats: GenerationStats | None = None,
) -> Iterator[tuple[int, GenerateResult]]:
    """Generate for every request; yield (index in `requests`, result) as each row finishes.

    max_rows: the number of slots (rows decoded together).
    token_budget: the most cache columns x rows the running rows may need at once.
    """
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    scheduler = _Scheduler(
        model, tokenizer, requests, max_rows, token_budget, max_length, stats if stats is not None else GenerationStats()
    )
    for row in scheduler.run():
        yield row.index, row.result()
        if progress is not None:
            progress(1)
