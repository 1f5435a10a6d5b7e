"""The engine's contract: batched numbers equal plain unbatched transformers, in input order."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from evalkit.engine import Engine, EngineSettings, GenerateRequest, LoglikelihoodRequest
from evalkit.engine.batching import plan_batches
from evalkit.engine.generate import prompt_ids
from evalkit.engine.tokenize import encode_pair

LOGLIK_REQUESTS = [
    LoglikelihoodRequest("The capital of France is", " Paris"),
    LoglikelihoodRequest("Question: what is two plus two?\nAnswer:", " four, of course"),
    LoglikelihoodRequest("", "An empty context is scored after the BOS/EOS token"),
    LoglikelihoodRequest("A much longer context that goes on " * 12, " and ends here."),
    LoglikelihoodRequest("Trailing spaces move to the continuation   ", "word"),
    LoglikelihoodRequest("Question: what is two plus two?\nAnswer:", " A"),
    LoglikelihoodRequest("Question: what is two plus two?\nAnswer:", " B"),
    LoglikelihoodRequest("Short", " x"),
]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir, local_files_only=True)
    return model, tokenizer


def reference_loglikelihood(model, tokenizer, request):
    """An unbatched fp32 forward of plain transformers over context + continuation."""
    context, continuation = encode_pair(tokenizer, request.context, request.continuation)
    ids = torch.tensor([context + continuation])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    positions = range(len(context) - 1, len(context) + len(continuation) - 1)
    total = sum(logprobs[p, t].item() for p, t in zip(positions, continuation))
    greedy = all(logprobs[p].argmax().item() == t for p, t in zip(positions, continuation))
    return total, greedy, len(continuation)


@pytest.mark.parametrize("max_rows,budget", [(1, 100000), (3, 100000), (64, 120)])
def test_batched_loglikelihood_equals_unbatched_fp32_forward(tiny, max_rows, budget):
    model, tokenizer = tiny
    engine = Engine(model, tokenizer, EngineSettings(max_rows=max_rows, token_budget=budget))
    results = engine.loglikelihood(LOGLIK_REQUESTS)
    for request, result in zip(LOGLIK_REQUESTS, results):
        total, greedy, n = reference_loglikelihood(model, tokenizer, request)
        assert result.n_tokens == n
        assert result.is_greedy == greedy
        assert abs(result.logprob - total) <= 1e-5, (request, result.logprob, total)


def test_greedy_continuation_is_reported_greedy(tiny):
    model, tokenizer = tiny
    engine = Engine(model, tokenizer)
    checked = 0
    for context in ["Question: what is two plus two?\nAnswer:", "Once upon a time", "Hello there", "The colour"]:
        ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            ranked = model(torch.tensor([ids])).logits[0, -1].argsort(descending=True).tolist()
        best, runner_up = (tokenizer.decode([t]) for t in ranked[:2])
        # Only tokens whose text re-tokenizes to themselves after the context can be asked about.
        if encode_pair(tokenizer, context, best)[1] != [ranked[0]]:
            continue
        assert engine.loglikelihood([LoglikelihoodRequest(context, best)])[0].is_greedy
        assert not engine.loglikelihood([LoglikelihoodRequest(context, runner_up)])[0].is_greedy
        checked += 1
    assert checked >= 1


def test_iter_loglikelihood_yields_every_index_once(tiny):
    model, tokenizer = tiny
    engine = Engine(model, tokenizer, EngineSettings(max_rows=2, token_budget=100000))
    seen = [index for index, _ in engine.iter_loglikelihood(LOGLIK_REQUESTS)]
    assert sorted(seen) == list(range(len(LOGLIK_REQUESTS)))


def test_plan_batches_respects_budget_and_covers_all():
    lengths = [5, 50, 7, 7, 120, 3, 64]
    plan = plan_batches(lengths, max_rows=3, token_budget=128)
    covered = sorted(i for batch in plan for i in batch.indices)
    assert covered == list(range(len(lengths)))
    for batch in plan:
        assert len(batch.indices) <= 3
        assert batch.padded_length == max(lengths[i] for i in batch.indices)
        assert len(batch.indices) == 1 or len(batch.indices) * batch.padded_length <= 128


GEN_PROMPTS = [
    "Once upon a time",
    "The quick brown fox jumps over the lazy dog and then",
    "Hello",
    "A list of colours: red, green,",
    "In the beginning there was a very long sentence that keeps going and going",
]


def reference_generate(model, tokenizer, request):
    ids = torch.tensor([prompt_ids(tokenizer, request, 512)])
    output = model.generate(
        ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=request.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
    )[0, ids.shape[1]:].tolist()
    return output


@pytest.mark.parametrize("max_rows", [1, 2, 16])
def test_generation_equals_transformers_greedy_generate(tiny, max_rows):
    model, tokenizer = tiny
    requests = [GenerateRequest(p, max_new_tokens=12 + 3 * i) for i, p in enumerate(GEN_PROMPTS)]
    results = Engine(model, tokenizer, EngineSettings(max_rows=max_rows)).generate(requests)
    for request, result in zip(requests, results):
        expected = reference_generate(model, tokenizer, request)
        assert list(result.token_ids) == expected[: len(result.token_ids)]
        if result.finish_reason == "length":
            assert len(result.token_ids) == request.max_new_tokens == len(expected)
        else:
            assert result.finish_reason == "eos" and result.token_ids[-1] == expected[len(result.token_ids) - 1]


def test_stop_string_cuts_the_completion(tiny):
    model, tokenizer = tiny
    free = Engine(model, tokenizer).generate([GenerateRequest("Once upon a time", max_new_tokens=20)])[0]
    assert len(free.text) > 4
    stop = free.text[2:4]
    stopped = Engine(model, tokenizer).generate([GenerateRequest("Once upon a time", max_new_tokens=20, stop=(stop,))])[0]
    assert stopped.finish_reason == "stop"
    assert stop not in stopped.text
    assert free.text.startswith(stopped.text)


def test_chat_request_uses_the_chat_template(tiny):
    model, tokenizer = tiny
    request = GenerateRequest("Say hi", max_new_tokens=3, chat=True, system="Be brief.")
    ids = prompt_ids(tokenizer, request, 512)
    text = tokenizer.decode(ids)
    assert "Say hi" in text and "Be brief." in text and "<|im_start|>" in text


def test_too_long_generation_budget_is_a_clear_error(tiny):
    model, tokenizer = tiny
    from evalkit.errors import EngineError

    with pytest.raises(EngineError, match="max_new_tokens=600 leaves no room"):
        Engine(model, tokenizer).generate([GenerateRequest("Hi", max_new_tokens=600)])


PREAMBLE = "The following are questions with answers.\n\n" + "".join(
    f"Question: what is {i} plus {i}?\nAnswer: {2 * i}\n\n" for i in range(1, 9)
)
QUESTIONS = (
    "ten plus ten", "a fox", "the colour of the sky on a clear day",
    "the name of the long river that runs through the middle of the old capital city of the north",
)
SHARED_REQUESTS = [
    LoglikelihoodRequest(PREAMBLE + f"Question: what is {q}?\nAnswer:", c, shared_prefix=PREAMBLE, share_context=share)
    for share in (False, True)
    for q in QUESTIONS
    for c in (" 20", " a small animal", " blue, mostly")
]


def test_shared_prefix_is_used_and_equals_scoring_the_whole_context(tiny):
    from evalkit.engine.loglikelihood import plan_rows

    model, tokenizer = tiny
    rows = plan_rows(tokenizer, SHARED_REQUESTS, 512)
    assert all(len(row.prefix) >= 48 for row in rows)
    # The preamble is shared by all; with share_context each question's context gets its own
    # level on top of it.
    preamble = {row.prefix for row in rows if not row.parent}
    assert len(preamble) == 1
    assert {row.parent for row in rows if row.parent} == preamble
    assert len({row.prefix for row in rows}) == 1 + len(QUESTIONS)
    results = Engine(model, tokenizer).loglikelihood(SHARED_REQUESTS)
    for request, result in zip(SHARED_REQUESTS, results):
        total, greedy, n = reference_loglikelihood(model, tokenizer, request)
        assert result.n_tokens == n and result.is_greedy == greedy
        assert abs(result.logprob - total) <= 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_deterministic_mode_is_bit_identical_across_batch_sizes_and_order(tiny, dtype):
    model, tokenizer = tiny
    model = model.to(dtype)
    try:
        requests = LOGLIK_REQUESTS + SHARED_REQUESTS
        reference = [
            Engine(model, tokenizer, EngineSettings(max_rows=1)).loglikelihood([r])[0] for r in requests
        ]
        for max_rows in (1, 7, 64):
            engine = Engine(model, tokenizer, EngineSettings(max_rows=max_rows))
            assert engine.loglikelihood(requests) == reference
            assert engine.loglikelihood(requests[::-1]) == reference[::-1]
    finally:
        model.to(torch.float32)


PACKED_REQUESTS = [
    LoglikelihoodRequest(f"Question: how do I {goal}?\nAnswer:", choice, share_context=True)
    for goal in ("open a jar", "boil an egg quickly")
    for choice in (" twist the lid while holding the jar steady", " hit it with a hammer", " twist the lid")
] + [LoglikelihoodRequest("Question: how do I open a jar?\nAnswer:", " twist the lid", share_context=True)]


def test_short_shared_contexts_are_packed_and_score_as_alone(tiny):
    from evalkit.engine.loglikelihood import plan_rows

    model, tokenizer = tiny
    rows = plan_rows(tokenizer, PACKED_REQUESTS, 512)
    assert len(rows) == 2 and all(row.tree is not None for row in rows)
    # The continuations form a trie: " twist the lid" runs once for it and its longer sibling.
    for row in rows:
        index = row.requests[0][0]
        context, _ = encode_pair(tokenizer, PACKED_REQUESTS[index].context, PACKED_REQUESTS[index].continuation)
        continuations = {t for _, t, _ in row.requests}
        nodes = {t[:k] for t in continuations for k in range(1, len(t))}
        assert len(row.suffix) == len(context) + len(nodes)
        assert len(nodes) < sum(len(t) - 1 for t in continuations)
    results = Engine(model, tokenizer).loglikelihood(PACKED_REQUESTS)
    assert results[-1] == results[2]  # a repeated choice is scored once, identically
    for request, result in zip(PACKED_REQUESTS, results):
        total, greedy, n = reference_loglikelihood(model, tokenizer, request)
        assert result.n_tokens == n and result.is_greedy == greedy
        assert abs(result.logprob - total) <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_rows_are_bit_identical_across_batch_sizes_and_order(tiny, dtype):
    model, tokenizer = tiny
    model = model.to(dtype)
    try:
        requests = PACKED_REQUESTS + LOGLIK_REQUESTS
        reference = [Engine(model, tokenizer).loglikelihood([r])[0] for r in requests]
        # Alone, a packed request is packed with no sibling: compare whole items instead.
        items = Engine(model, tokenizer, EngineSettings(max_rows=1)).loglikelihood(requests)
        for max_rows in (1, 7, 64):
            engine = Engine(model, tokenizer, EngineSettings(max_rows=max_rows))
            assert engine.loglikelihood(requests) == items
            assert engine.loglikelihood(requests[::-1]) == items[::-1]
        # Packed or alone is the same computation up to rounding (bf16 rounds each op to ~0.4%).
        tolerance = 1e-5 if dtype == torch.float32 else 5e-2
        assert max(abs(a.logprob - b.logprob) for a, b in zip(items, reference)) < tolerance
    finally:
        model.to(torch.float32)


def test_self_test_scores_an_items_choices_together():
    """Choices sharing their context may be packed in one row: the self-test's unit is the item."""
    from evalkit.engine.selftest import CANARIES, items

    units = items(CANARIES)
    assert sorted(i for unit in units for i in unit) == list(range(len(CANARIES)))
    for unit in units:
        if len(unit) > 1:
            assert all(CANARIES[i].share_context and CANARIES[i].context == CANARIES[unit[0]].context for i in unit)
    assert sum(len(u) > 1 for u in units) == 2


@pytest.mark.parametrize("fine", [False, True])
def test_length_buckets_bound_padding(fine):
    from evalkit.engine.loglikelihood import length_bucket

    waste = 1 / 16 if fine else 1 / 8
    least = 8 if fine else 16
    previous = 0
    for n in range(1, 5000):
        bucket = length_bucket(n, fine=fine)
        assert bucket >= max(n, previous)  # never shorter than the input, monotone
        assert bucket - n < max(least, waste * bucket)
        previous = bucket


def test_head_blocks_span_batches_without_changing_results(tiny, monkeypatch):
    """The head scores continuation positions queued across batches in full blocks; a request's
    numbers are the same whether its block holds rows of one batch or of many."""
    import evalkit.engine.loglikelihood as ll

    model, tokenizer = tiny
    requests = LOGLIK_REQUESTS + PACKED_REQUESTS
    alone = [Engine(model, tokenizer).loglikelihood([r])[0] for r in requests]
    many_batches = Engine(model, tokenizer, EngineSettings(max_rows=1)).loglikelihood(requests)
    monkeypatch.setattr(ll, "HEAD_BLOCK_ROWS", 3)  # blocks smaller than a batch's rows
    small_blocks = Engine(model, tokenizer, EngineSettings(max_rows=64)).loglikelihood(requests)
    for a, b, c in zip(alone, many_batches, small_blocks):
        assert a.n_tokens == b.n_tokens == c.n_tokens and a.is_greedy == b.is_greedy == c.is_greedy
        assert abs(a.logprob - b.logprob) <= 1e-5 and abs(a.logprob - c.logprob) <= 1e-5
