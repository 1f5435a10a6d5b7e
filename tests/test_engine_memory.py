"""The batch planner's memory model."""

from __future__ import annotations

import torch
from transformers import LlamaConfig

from evalkit.engine.memory import CPU_TOKEN_BUDGET, bytes_per_token, choose_token_budget


def test_bytes_per_token_counts_kv_cache_and_one_layer_of_activations():
    config = LlamaConfig(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         intermediate_size=1536)
    kv = 2 * 30 * 3 * 64 * 4
    activations = (4 * 576 + 3 * 1536) * 4
    assert bytes_per_token(config, torch.float32) == kv + activations
    assert bytes_per_token(config, torch.bfloat16) == (kv + activations) // 2


def test_cpu_budget_is_the_default_and_an_explicit_one_wins():
    model = torch.nn.Linear(4, 4)
    assert choose_token_budget(model, None).tokens == CPU_TOKEN_BUDGET
    chosen = choose_token_budget(model, 999)
    assert chosen.tokens == 999 and "--token-budget" in chosen.reason
