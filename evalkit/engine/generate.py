"""Batched greedy generation with a KV cache, stop strings and a token limit.

Prompts are left-padded into batches (grouped by length to keep padding low) and prefilled at once;
then one token per row per step is decoded against the cache. A row that emits end-of-sequence,
completes a stop string or reaches its token limit leaves the batch immediately: its cache rows are
dropped, so the remaining rows stop paying for it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import torch
from transformers import DynamicCache

from evalkit.engine.batching import plan_batches
from evalkit.engine.modeling import cache_keyword
from evalkit.engine.requests import FinishReason, GenerateRequest, GenerateResult
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


class _Row:
    """One prompt being decoded."""

    def __init__(self, index: int, request: GenerateRequest):
        self.index = index
        self.request = request
        self.generated: list[int] = []
        self.finish: FinishReason | None = None
        self.text = ""

    def push(self, token: int, tokenizer: Any, eos_ids: frozenset[int]) -> None:
        self.generated.append(token)
        if token in eos_ids:
            self.finish = "eos"
            self.text = tokenizer.decode(self.generated[:-1], skip_special_tokens=True)
            return
        if self.request.stop:
            text = tokenizer.decode(self.generated, skip_special_tokens=True)
            cuts = [text.find(s) for s in self.request.stop if s and s in text]
            if cuts:
                self.finish = "stop"
                self.text = text[: min(cuts)]
                return
        if len(self.generated) >= self.request.max_new_tokens:
            self.finish = "length"
            self.text = tokenizer.decode(self.generated, skip_special_tokens=True)

    def result(self) -> GenerateResult:
        assert self.finish is not None
        return GenerateResult(text=self.text, token_ids=tuple(self.generated), finish_reason=self.finish)


def iter_generate(
    model: torch.nn.Module,
    tokenizer: Any,
    requests: Sequence[GenerateRequest],
    *,
    max_rows: int,
    token_budget: int,
    max_length: int,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, GenerateResult]]:
    """Generate for every request; yield (index in `requests`, result) as each row finishes."""
    prompts = [prompt_ids(tokenizer, r, max_length) for r in requests]
    device = next(model.parameters()).device
    eos_ids = eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)
    lengths = [len(p) + r.max_new_tokens for p, r in zip(prompts, requests)]
    for batch in plan_batches(lengths, max_rows=max_rows, token_budget=token_budget):
        rows = [_Row(i, requests[i]) for i in batch.indices]
        width = max(len(prompts[i]) for i in batch.indices)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(batch.indices):
            n = len(prompts[i])
            input_ids[r, width - n:] = torch.tensor(prompts[i])
            attention[r, width - n:] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        # Positions as transformers' generate computes them for left padding.
        positions = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 1)
        cache = DynamicCache(config=model.config)
        cache_arg = {cache_keyword(model): cache}
        with torch.inference_mode():
            logits = model(
                input_ids=input_ids, attention_mask=attention, position_ids=positions,
                use_cache=True, logits_to_keep=1, **cache_arg,
            ).logits[:, -1]
            next_positions = positions[:, -1] + 1
            while True:
                tokens = logits.float().argmax(dim=-1)
                keep: list[int] = []
                for r, (row, token) in enumerate(zip(rows, tokens.tolist())):
                    row.push(token, tokenizer, eos_ids)
                    if row.finish is None:
                        keep.append(r)
                    else:
                        yield row.index, row.result()
                        if progress is not None:
                            progress(1)
                if not keep:
                    break
                if len(keep) < len(rows):
                    # Finished rows leave the batch: drop their cache rows and mask rows.
                    selected = torch.tensor(keep, device=device)
                    cache.batch_select_indices(selected)
                    rows = [rows[r] for r in keep]
                    tokens, attention, next_positions = tokens[selected], attention[selected], next_positions[selected]
                attention = torch.cat([attention, attention.new_ones((len(rows), 1))], dim=1)
                logits = model(
                    input_ids=tokens[:, None], attention_mask=attention, position_ids=next_positions[:, None],
                    use_cache=True, **cache_arg,
                ).logits[:, -1]
                next_positions = next_positions + 1
