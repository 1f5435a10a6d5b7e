"""What the engine needs to know about a transformers causal LM, in one place."""

from __future__ import annotations

import inspect

import torch


def cache_keyword(module: torch.nn.Module) -> str:
    """transformers renamed `past_key_values` to `cache` in its forward signatures (5.x)."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def body_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The transformer body (hidden states out) and the LM head of a causal LM."""
    head = model.get_output_embeddings()
    body = getattr(model, "base_model", None)
    if head is None or body is None or body is model:
        raise TypeError(f"{type(model).__name__} does not expose a separate body and LM head")
    return body, head
