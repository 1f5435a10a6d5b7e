"""Turning request text into token ids, the same way lm-evaluation-harness does.

Matching lm-eval's tokenization is what makes our log-likelihoods comparable with its numbers:
the context is encoded alone, the continuation is what encoding context+continuation adds, and
trailing whitespace of the context is moved into the continuation (most BPE vocabularies attach the
space to the following word).
"""

from __future__ import annotations

from typing import Any

from evalkit.errors import EngineError


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` without special tokens (no BOS added: lm-eval's default for causal LMs)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prefix_token_id(tokenizer: Any) -> int:
    """The token that stands in for an empty context: BOS if the tokenizer has one, else EOS."""
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise EngineError("the tokenizer has neither a BOS nor an EOS token")


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) for a log-likelihood request."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    if not context:
        return [prefix_token_id(tokenizer)], encode(tokenizer, continuation)
    whole = encode(tokenizer, context + continuation)
    context_ids = encode(tokenizer, context)
    return context_ids, whole[len(context_ids):]


def chat_prompt(tokenizer: Any, prompt: str, system: str | None) -> str:
    """The prompt as one user turn in the model's chat template, with the assistant turn opened."""
    if not getattr(tokenizer, "chat_template", None):
        raise EngineError(
            "this suite asks for the chat template, but the model's tokenizer has none; "
            "use an instruction-tuned checkpoint that ships a chat_template"
        )
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
