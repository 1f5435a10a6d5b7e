"""The generation engine's contract: continuous batching changes speed, never tokens.

Greedy outputs equal transformers' greedy `generate` on each prompt alone, whatever the number of
slots and the order of the requests; sampled outputs depend on each request's seed only.
"""

from __future__ import annotations

import functools

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, MistralConfig, MistralForCausalLM

from evalkit.engine import Engine, EngineSettings, GenerateRequest
from evalkit.engine.generate import prompt_ids
from evalkit.engine.sampling import SamplingParams, TokenStream, sample_token

WORDS = "the quick brown fox jumps over the lazy dog while a cat sleeps in the warm sun".split()


def _prompts(n: int) -> list[str]:
    """Prompts of 1 to ~40 tokens, in no particular length order."""
    return [" ".join(WORDS[(7 * i) % len(WORDS):] + WORDS[: (5 * i) % 11]) for i in range(n)]


# Twenty requests whose rows end at different steps: limits from 3 to 41 tokens, some stop strings.
REQUESTS = [
    GenerateRequest(p, max_new_tokens=3 + (11 * i) % 39, stop=(" the",) if i % 5 == 0 else ())
    for i, p in enumerate(_prompts(20))
]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir, local_files_only=True)
    return model, tokenizer


def hf_greedy(model, tokenizer, request: GenerateRequest) -> list[int]:
    """transformers' greedy generate on the prompt alone, to the token limit (no stop strings)."""
    ids = torch.tensor([prompt_ids(tokenizer, request, 512)])
    return model.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=request.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
    )[0, ids.shape[1]:].tolist()


def generate(model, tokenizer, requests, slots: int, **settings):
    return Engine(model, tokenizer, EngineSettings(max_rows=slots, **settings)).generate(requests)


@pytest.fixture(scope="module")
def expected(tiny):
    model, tokenizer = tiny
    return [hf_greedy(model, tokenizer, r) for r in REQUESTS]


@pytest.mark.parametrize("slots", [1, 4, 16])
def test_greedy_tokens_equal_transformers_generate_for_any_slot_count(tiny, expected, slots):
    model, tokenizer = tiny
    results = generate(model, tokenizer, REQUESTS, slots)
    for request, result, reference in zip(REQUESTS, results, expected):
        n = len(result.token_ids)
        assert list(result.token_ids) == reference[:n]
        if result.finish_reason == "length":
            assert n == request.max_new_tokens
        elif result.finish_reason == "stop":
            assert any(s in tokenizer.decode(reference[:n]) for s in request.stop)
            assert not any(s in result.text for s in request.stop)


def test_reversed_order_gives_the_same_outputs(tiny):
    model, tokenizer = tiny
    forward = generate(model, tokenizer, REQUESTS, 4)
    backward = generate(model, tokenizer, REQUESTS[::-1], 4)[::-1]
    assert forward == backward


def test_slots_are_refilled_as_rows_finish(tiny, monkeypatch):
    """With 4 slots and 20 requests, new prompts are prefilled while other rows are mid-decode."""
    model, tokenizer = tiny
    widths: list[tuple[int, int]] = []
    forward = model.forward

    @functools.wraps(forward)
    def spy(*args, **kwargs):
        ids = kwargs["input_ids"]
        widths.append((ids.shape[0], ids.shape[1]))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    generate(model, tokenizer, REQUESTS, 4)
    prefills = [w for w in widths if w[1] > 1]
    decode_rows = [w[0] for w in widths if w[1] == 1]
    assert len(prefills) >= 5  # 20 prompts enter through at most 4 slots
    assert max(decode_rows) == 4 and sum(decode_rows) < 4 * len(decode_rows)


def test_token_budget_limits_the_running_rows(tiny, expected):
    model, tokenizer = tiny
    results = generate(model, tokenizer, REQUESTS, 16, token_budget=120)
    assert [list(r.token_ids) for r in results] == [e[: len(r.token_ids)] for r, e in zip(results, expected)]


def test_sliding_window_models_fall_back_to_batch_by_batch(tiny_tokenizer_dir):
    """A cache that is not plain full attention cannot be merged; the engine still gives generate's tokens."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir, local_files_only=True)
    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=128, max_position_embeddings=512, sliding_window=16,
        initializer_range=0.2, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = MistralForCausalLM(config).eval()
    requests = [GenerateRequest(p, max_new_tokens=20) for p in _prompts(6)]
    results = generate(model, tokenizer, requests, 4)
    for request, result in zip(requests, results):
        reference = hf_greedy(model, tokenizer, request)
        assert list(result.token_ids) == reference[: len(result.token_ids)]


# --- sampling ---------------------------------------------------------------------------------------

SAMPLED = [
    GenerateRequest(p, max_new_tokens=16, temperature=1.5, top_p=0.95, top_k=50, seed=1000 + i)
    for i, p in enumerate(_prompts(10))
]


def test_sampled_outputs_do_not_depend_on_the_batch(tiny):
    model, tokenizer = tiny
    alone = generate(model, tokenizer, SAMPLED, 1)
    together = generate(model, tokenizer, SAMPLED, 16)
    reversed_ = generate(model, tokenizer, SAMPLED[::-1], 3)[::-1]
    assert alone == together == reversed_


def test_the_seed_drives_the_sample(tiny):
    model, tokenizer = tiny
    base = SAMPLED[0]
    texts = {
        generate(model, tokenizer, [GenerateRequest(**{**base.__dict__, "seed": seed})], 1)[0].token_ids
        for seed in range(6)
    }
    assert len(texts) > 1  # different seeds, different samples
    again = generate(model, tokenizer, [base], 1)[0]
    assert again == generate(model, tokenizer, [base], 1)[0]


def test_top_k_one_is_greedy(tiny):
    model, tokenizer = tiny
    request = REQUESTS[3]
    sampled = GenerateRequest(**{**request.__dict__, "temperature": 0.7, "top_k": 1, "seed": 5})
    assert generate(model, tokenizer, [sampled], 1)[0].token_ids == generate(model, tokenizer, [request], 1)[0].token_ids


def test_sample_token_inverts_the_cdf_in_a_fixed_order():
    logits = torch.log(torch.tensor([0.1, 0.4, 0.2, 0.3]))
    params = SamplingParams(temperature=1.0)
    # Sorted descending: token 1 (0.4), 3 (0.3), 2 (0.2), 0 (0.1); cumulative 0.4, 0.7, 0.9, 1.0.
    picks = [sample_token(logits, params, u) for u in (0.0, 0.39, 0.41, 0.69, 0.71, 0.89, 0.91, 0.999)]
    assert picks == [1, 1, 3, 3, 2, 2, 0, 0]
    # top_p 0.65 keeps tokens 1 and 3 (0.4 + 0.3 reaches it), renormalised to 4/7 and 3/7.
    assert [sample_token(logits, SamplingParams(1.0, top_p=0.65), u) for u in (0.5, 0.6)] == [1, 3]
    assert {sample_token(logits, SamplingParams(1.0, top_k=2), u) for u in (0.0, 0.99)} == {1, 3}
    # Ties go to the lower token id.
    assert sample_token(torch.zeros(3), params, 0.0) == 0


def test_token_stream_is_a_function_of_the_seed():
    a, b, c = TokenStream(7), TokenStream(7), TokenStream(8)
    draws = [a.uniform() for _ in range(5)]
    assert draws == [b.uniform() for _ in range(5)]
    assert draws != [c.uniform() for _ in range(5)]


# --- shared prefixes ---------------------------------------------------------------------------------

PREAMBLE = "Answer each question in a few words.\n\n" + "".join(
    f"Question: what comes after {w}?\nAnswer: the next word.\n\n" for w in WORDS[:6]
)
PREFIXED = [
    GenerateRequest(PREAMBLE + f"Question: {p}?\nAnswer:", max_new_tokens=4 + (7 * i) % 19)
    for i, p in enumerate(_prompts(12))
]


@pytest.mark.parametrize("slots", [4, 16])
def test_a_shared_prefix_is_computed_once_and_changes_no_token(tiny, slots):
    from evalkit.engine.generate import GenerationStats, iter_generate

    model, tokenizer = tiny
    stats = GenerationStats()
    results = dict(iter_generate(
        model, tokenizer, PREFIXED, max_rows=slots, token_budget=10**6, max_length=512, stats=stats,
    ))
    prompt_tokens = sum(len(prompt_ids(tokenizer, r, 512)) for r in PREFIXED)
    assert stats.prefill_tokens < prompt_tokens / 2  # the preamble was not computed per row
    for i, request in enumerate(PREFIXED):
        reference = hf_greedy(model, tokenizer, request)
        assert list(results[i].token_ids) == reference[: len(results[i].token_ids)]


def test_shared_prefix_length_leaves_every_prompt_a_token_of_its_own():
    from evalkit.engine.generate import shared_prefix_length

    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix_length([[7], [7, 8]]) == 0


# --- cascade attention ------------------------------------------------------------------------------


@pytest.mark.parametrize("q_len", [1, 5])
def test_cascade_attention_equals_attention_over_the_concatenation(q_len):
    """A shared prefix attended to once for all rows, merged by log-sum-exp, equals sdpa over
    prefix + each row's own columns (with left padding masked)."""
    from evalkit.engine.cascade import SharedPrefix, cascade_attention_forward

    torch.manual_seed(0)
    rows, heads, kv_heads, dim, prefix_len, own = 3, 6, 2, 16, 11, 9
    module = torch.nn.Module()
    module.layer_idx, module.num_key_value_groups = 0, heads // kv_heads
    query = torch.randn(rows, heads, q_len, dim)
    key, value = torch.randn(rows, kv_heads, own, dim), torch.randn(rows, kv_heads, own, dim)
    prefix_k, prefix_v = torch.randn(1, kv_heads, prefix_len, dim), torch.randn(1, kv_heads, prefix_len, dim)
    # Row r has r columns of left padding; queries see their own columns causally.
    mask = torch.ones(rows, 1, q_len, own, dtype=torch.bool).tril(own - q_len)
    for r in range(rows):
        mask[r, :, :, :r] = False
    prefix = SharedPrefix(tuple(range(prefix_len)), [prefix_k], [prefix_v])
    out, _ = cascade_attention_forward(module, query, key, value, mask, scaling=dim**-0.5, cascade=prefix)
    whole_k = torch.cat([prefix_k.expand(rows, -1, -1, -1), key], dim=2).repeat_interleave(3, dim=1)
    whole_v = torch.cat([prefix_v.expand(rows, -1, -1, -1), value], dim=2).repeat_interleave(3, dim=1)
    whole_mask = torch.cat([torch.ones(rows, 1, q_len, prefix_len, dtype=torch.bool), mask], dim=3)
    expected = torch.nn.functional.scaled_dot_product_attention(query, whole_k, whole_v, attn_mask=whole_mask)
    assert out.shape == (rows, q_len, heads, dim)
    assert torch.allclose(out, expected.transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_rows_with_different_preambles_share_what_they_have_in_common(tiny, monkeypatch):
    """Groups prefilled with different shared prefixes are merged: the part that differs is copied
    into the rows' own columns, the common part stays shared. Tokens equal transformers' greedy."""
    from evalkit.engine import cascade, kvcache
    from evalkit.engine.generate import iter_generate

    model, tokenizer = tiny
    calls = []
    original = cascade.cascade_attention_forward

    def spy(module, query, key, value, mask, cascade=None, **kwargs):
        calls.append(0 if cascade is None else len(cascade.ids))
        return original(module, query, key, value, mask, cascade=cascade, **kwargs)

    monkeypatch.setattr(cascade, "cascade_attention_forward", spy)
    prepended = []
    original_prepend = kvcache.prepend
    monkeypatch.setattr(kvcache, "prepend", lambda *a: prepended.append(a[3]) or original_prepend(*a))
    other = PREAMBLE.replace("a few words", "one short sentence, please")
    requests = [
        GenerateRequest((PREAMBLE if i % 3 else other) + f"Question: {p}?\nAnswer:", max_new_tokens=3 + (5 * i) % 13)
        for i, p in enumerate(_prompts(12))
    ]
    results = dict(iter_generate(model, tokenizer, requests, max_rows=4, token_budget=10**6, max_length=512))
    assert calls and max(calls) > 16  # cascade attention ran with a real shared prefix
    assert prepended  # and groups with different preambles were merged
    assert model.config._attn_implementation == "sdpa"  # restored after every call
    for i, request in enumerate(requests):
        reference = hf_greedy(model, tokenizer, request)
        assert list(results[i].token_ids) == reference[: len(results[i].token_ids)]


def test_cascade_attention_kernels_agree():
    """The CPU kernel path and the plain-matmul path (used on GPUs) give the same attention and
    log-sum-exp, and neither gives NaN for a query that may attend nothing."""
    from evalkit.engine.cascade import _attend

    torch.manual_seed(1)
    query, key, value = torch.randn(3, 2, 6, 8), torch.randn(3, 2, 10, 8), torch.randn(3, 2, 10, 8)
    mask = torch.rand(3, 1, 6, 10) > 0.3
    mask[0, 0, 2] = False  # a padding query
    fused, fused_lse = _attend(query, key, value, mask, 0.35, fused=True)
    plain, plain_lse = _attend(query, key, value, mask, 0.35, fused=False)
    assert not fused.isnan().any() and not plain.isnan().any()
    visible = mask.any(dim=-1, keepdim=True).expand(3, 2, 6, 1)
    assert torch.allclose(fused, plain, atol=1e-5)
    assert torch.allclose(fused_lse[visible], plain_lse[visible], atol=1e-5)


def test_cascade_attention_with_a_position_bias_attends_to_the_whole():
    """A position bias cannot be split between prefix and own columns: the prefix is copied to
    every row and sdpa sees the concatenation (a zero bias must give plain attention)."""
    from evalkit.engine.cascade import SharedPrefix, cascade_attention_forward

    torch.manual_seed(2)
    module = torch.nn.Module()
    module.layer_idx, module.num_key_value_groups = 0, 2
    query, key, value = torch.randn(2, 4, 1, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    prefix = SharedPrefix((1, 2, 3), [torch.randn(1, 2, 3, 8)], [torch.randn(1, 2, 3, 8)])
    mask = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    mask[1, :, :, :2] = False
    split, _ = cascade_attention_forward(module, query, key, value, mask, scaling=0.3, cascade=prefix)
    whole, _ = cascade_attention_forward(
        module, query, key, value, mask, scaling=0.3, cascade=prefix, position_bias=torch.zeros(1, 4, 1, 8)
    )
    assert torch.allclose(split, whole, atol=1e-5)
