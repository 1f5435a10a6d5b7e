"""The optional vLLM backend: the same interface and the same numbers as evalkit's engine.

Two layers. Everywhere (CPU CI included): a small fake of the `vllm` module is injected into
sys.modules; it keeps vLLM's documented contract (SamplingParams names, TokensPrompt, prompt_logprobs
as dicts of Logprob(logprob, rank), CompletionOutput.finish_reason / stop_reason, the order vLLM
checks length, EOS and stop tokens) and computes with the tiny transformers model, so the mapping
(tokenization, fp64 sums, greedy flags, finish reasons, order, chunking, the errors) is proven
against evalkit's own engine. On a CUDA machine with vLLM installed: the real correctness tests
(vLLM's log-likelihoods within 1e-4 in fp32 of evalkit's engine, greedy generations identical);
CPU CI skips them cleanly.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from evalkit.engine import Engine, EngineSettings, GenerateRequest, LoglikelihoodRequest
from evalkit.engine import vllm_backend as vb
from evalkit.engine.selftest import (
    CANARIES,
    GENERATION_CANARIES,
    generation_self_test,
    invariance_self_test,
)
from evalkit.errors import EngineError
from evalkit.model import load_model

# --- a fake vllm, faithful to the contract the backend relies on ---------------------------------

# The keyword names the backend may use, as vLLM (0.6 to current) spells them: a typo fails here.
SAMPLING_FIELDS = {
    "n", "temperature", "top_p", "top_k", "seed", "stop", "stop_token_ids", "max_tokens", "logprobs",
    "prompt_logprobs", "detokenize", "skip_special_tokens", "include_stop_str_in_output",
}
LLM_FIELDS = {
    "model", "tokenizer", "dtype", "seed", "tensor_parallel_size", "trust_remote_code", "max_model_len",
    "max_num_seqs", "load_format",
}


class FakeSamplingParams:
    def __init__(self, **kwargs: Any):
        unknown = set(kwargs) - SAMPLING_FIELDS
        if unknown:
            raise TypeError(f"SamplingParams got unexpected keyword(s) {sorted(unknown)}")
        self.temperature, self.top_p, self.top_k, self.seed = 1.0, 1.0, -1, None
        self.stop, self.stop_token_ids, self.max_tokens, self.prompt_logprobs = None, None, 16, None
        self.skip_special_tokens, self.include_stop_str_in_output, self.detokenize = True, False, True
        self.__dict__.update(kwargs)


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]
    finish_reason: str | None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    prompt_logprobs: list[dict[int, Logprob] | None] | None
    outputs: list[CompletionOutput] = field(default_factory=list)


class FakeLLM:
    """vLLM's offline `LLM`, computed with transformers on the CPU in float32."""

    instances: ClassVar[list[FakeLLM]] = []

    def __init__(self, **kwargs: Any):
        unknown = set(kwargs) - LLM_FIELDS
        if unknown:
            raise TypeError(f"LLM got unexpected keyword(s) {sorted(unknown)}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.kwargs = kwargs
        self.model = AutoModelForCausalLM.from_pretrained(kwargs["model"], dtype=torch.float32).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(kwargs["tokenizer"])
        self.calls: list[int] = []
        FakeLLM.instances.append(self)

    def generate(self, prompts: list[dict], sampling_params: list[FakeSamplingParams], use_tqdm: bool = True):
        assert len(prompts) == len(sampling_params) and use_tqdm is False
        self.calls.append(len(prompts))
        # Many tiny forwards (no cache): one thread, as intra-op threads only contend on a busy CPU.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [self._one(list(p["prompt_token_ids"]), s) for p, s in zip(prompts, sampling_params)]
        finally:
            torch.set_num_threads(threads)

    def _logprobs(self, ids: list[int]) -> torch.Tensor:
        with torch.inference_mode():
            return torch.log_softmax(self.model(torch.tensor([ids])).logits[0].float(), dim=-1)

    def _one(self, prompt: list[int], params: FakeSamplingParams) -> RequestOutput:
        assert len(prompt) + params.max_tokens <= self.kwargs["max_model_len"], "prompt too long for vLLM"
        prompt_logprobs = None
        if params.prompt_logprobs:
            rows = self._logprobs(prompt)
            prompt_logprobs = [None]
            for position in range(1, len(prompt)):
                row, token = rows[position - 1], prompt[position]
                top = int(row.argmax())
                # vLLM's rank: how many tokens are at least as likely (ties are not rank 1).
                prompt_logprobs.append({
                    top: Logprob(float(row[top]), 1),
                    token: Logprob(float(row[token]), int((row >= row[token]).sum())),
                })
        return RequestOutput(prompt, prompt_logprobs, [self._complete(prompt, params)])

    def _complete(self, prompt: list[int], params: FakeSamplingParams) -> CompletionOutput:
        generator = torch.Generator().manual_seed(params.seed or 0)
        out: list[int] = []
        while True:
            row = self._logprobs(prompt + out)[-1]
            if params.temperature == 0:
                token = int(row.argmax())
            else:
                token = int(torch.multinomial(torch.softmax(row / params.temperature, -1), 1, generator=generator))
            out.append(token)
            # vLLM's scheduler: the length limit first, then EOS, then stop token ids.
            if len(out) >= params.max_tokens:
                finish, reason = "length", None
            elif token == self.tokenizer.eos_token_id:
                finish, reason = "stop", None
            elif token in (params.stop_token_ids or ()):
                finish, reason = "stop", token
            else:
                finish, reason = None, None
            shown = out[:-1] if finish == "stop" else out
            text = self.tokenizer.decode(shown, skip_special_tokens=params.skip_special_tokens)
            # vLLM's output processor: a stop string ends the request (and overrides "length").
            hits = [text.find(s) for s in params.stop or () if s in text]
            if finish != "stop" and hits:
                return CompletionOutput(text[: min(hits)], out, "stop", next(s for s in params.stop if text.find(s) == min(hits)))
            if finish is not None:
                return CompletionOutput(text, out, finish, reason)


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A `vllm` module on sys.modules, one visible "GPU", and the process environment restored after."""
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM  # type: ignore[attr-defined]
    module.SamplingParams = FakeSamplingParams  # type: ignore[attr-defined]
    module.__version__ = "0.0-fake"  # type: ignore[attr-defined]
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict  # type: ignore[attr-defined]  # a TypedDict: calling it makes a dict
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for name in [*vb.OFFLINE_ENVIRONMENT, "VLLM_BATCH_INVARIANT"]:
        monkeypatch.delenv(name, raising=False)
    FakeLLM.instances.clear()
    return module


@pytest.fixture(scope="module")
def tiny_loaded(tiny_llama_dir: Path):
    return load_model(tiny_llama_dir, device="cpu", dtype="float32")


@pytest.fixture
def engines(fake_vllm, tiny_llama_dir: Path, tiny_loaded) -> tuple[Engine, vb.VllmEngine]:
    settings = EngineSettings(max_rows=8)
    evalkit_engine = Engine(tiny_loaded.model, tiny_loaded.tokenizer, settings)
    vllm_engine = vb.VllmEngine.from_folder(tiny_llama_dir, settings=settings, dtype="float32", seed=3)
    return evalkit_engine, vllm_engine


# --- import, errors, construction -----------------------------------------------------------------


def test_importing_evalkit_never_imports_vllm() -> None:
    code = (
        "import sys, evalkit, evalkit.cli, evalkit.runner, evalkit.backends, evalkit.engine.vllm_backend; "
        "assert 'vllm' not in sys.modules, 'vllm was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_missing_vllm_is_a_one_line_error_with_the_install_command(monkeypatch, tiny_llama_dir) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(EngineError) as caught:
        vb.VllmEngine.from_folder(tiny_llama_dir)
    message = str(caught.value)
    assert message.startswith("--backend vllm needs vLLM, which is not importable here (")
    assert "pip install 'evalkit[vllm]'" in message and "\n" not in message


def test_no_cuda_is_a_one_line_error(fake_vllm, monkeypatch, tiny_llama_dir) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineError, match=r"^--backend vllm runs on CUDA GPUs and none is visible here"):
        vb.VllmEngine.from_folder(tiny_llama_dir)
    assert FakeLLM.instances == []


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_cli_backend_vllm_without_vllm_fails_before_loading(tiny_llama_dir, tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "evalkit", "run", "--model", str(tiny_llama_dir), "--suite", "mmlu",
         "--limit", "1", "--backend", "vllm", "--out", str(tmp_path / "out")],
        check=False, capture_output=True, text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: --backend vllm needs vLLM")
    assert "pip install 'evalkit[vllm]'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before the report folder is made


def test_the_llm_is_built_offline_from_the_local_folder(fake_vllm, monkeypatch, tiny_llama_dir) -> None:
    import os

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)  # the tiny model has 4 heads: 2 of 3 GPUs
    engine = vb.VllmEngine.from_folder(tiny_llama_dir, settings=EngineSettings(max_rows=5), dtype="bfloat16", seed=9)
    kwargs = FakeLLM.instances[-1].kwargs
    assert kwargs == {
        "model": str(tiny_llama_dir), "tokenizer": str(tiny_llama_dir), "dtype": "bfloat16", "seed": 9,
        "tensor_parallel_size": 2, "trust_remote_code": False, "max_model_len": 512, "max_num_seqs": 5,
        "load_format": "safetensors",
    }
    assert all(os.environ[name] == "1" for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_NO_USAGE_STATS"))
    assert engine.max_length == 512
    assert engine.setup.describe()["tensor_parallel_size"] == 2
    vb.VllmEngine.from_folder(tiny_llama_dir, tensor_parallel_size=1)
    assert FakeLLM.instances[-1].kwargs["tensor_parallel_size"] == 1


def test_default_tensor_parallel_size_uses_every_gpu_that_divides_the_heads() -> None:
    assert vb.default_tensor_parallel_size(8, 32) == 8
    assert vb.default_tensor_parallel_size(3, 4) == 2
    assert vb.default_tensor_parallel_size(6, 14) == 2
    assert vb.default_tensor_parallel_size(4, None) == 4


# --- the request and result mappings --------------------------------------------------------------


def test_generate_request_becomes_vllm_sampling_params(fake_vllm) -> None:
    vllm = vb.import_vllm()
    eos = frozenset({7, 2})
    greedy = vb.sampling_params(vllm, GenerateRequest("Q", max_new_tokens=64, stop=("\n\n", "Q:"), seed=11), eos)
    assert (greedy.temperature, greedy.top_p, greedy.top_k, greedy.seed) == (0.0, 1.0, -1, 11)
    assert (greedy.max_tokens, greedy.stop, greedy.stop_token_ids) == (64, ["\n\n", "Q:"], [2, 7])
    assert greedy.skip_special_tokens is True and greedy.include_stop_str_in_output is False
    sampled = vb.sampling_params(vllm, GenerateRequest("Q", 8, temperature=0.7, top_p=0.9, top_k=20, seed=5), eos)
    assert (sampled.temperature, sampled.top_p, sampled.top_k, sampled.seed, sampled.stop) == (0.7, 0.9, 20, 5, None)
    scoring = vb.loglikelihood_params(vllm)
    assert (scoring.max_tokens, scoring.prompt_logprobs, scoring.temperature, scoring.detokenize) == (1, 1, 0.0, False)


def test_loglikelihood_prompt_is_evalkit_tokenization(tiny_loaded) -> None:
    from evalkit.engine.tokenize import encode_pair

    tokenizer = tiny_loaded.tokenizer
    request = LoglikelihoodRequest("The capital of France is ", "Paris")  # the space moves to the continuation
    context, continuation = encode_pair(tokenizer, request.context, request.continuation)
    assert vb.loglikelihood_prompt(tokenizer, request, 512) == (context + continuation, len(continuation))
    # Longer than the window: the last max_length - 1 tokens, the continuation kept whole.
    long = LoglikelihoodRequest("word " * 600, "end")
    prompt, n = vb.loglikelihood_prompt(tokenizer, long, 64)
    assert len(prompt) == 63 and n == len(encode_pair(tokenizer, long.context, long.continuation)[1])


def test_loglikelihood_result_sums_in_fp64_and_reads_ranks() -> None:
    prompt = [5, 6, 7, 8]
    entries = [None, {6: Logprob(-9.0, 3)}, {7: Logprob(-0.1, 1)}, {8: Logprob(-0.2, 1), 3: Logprob(-0.3, 2)}]
    result = vb.loglikelihood_result(prompt, 2, entries)
    # -0.1 + -0.2 in float64 (float32 would give -0.30000001192092896); the context's -9 is not counted.
    assert result.logprob == -0.30000000000000004 and result.n_tokens == 2 and result.is_greedy is True
    entries[3] = {8: Logprob(-1.25, 2), 3: Logprob(-0.1, 1)}
    assert vb.loglikelihood_result(prompt, 2, entries).is_greedy is False
    entries[3] = {8: Logprob(-1.25, None), 3: Logprob(-0.1, None)}  # no rank: compared with the best listed
    assert vb.loglikelihood_result(prompt, 2, entries).is_greedy is False
    entries[3] = {3: Logprob(-0.1, 1)}
    with pytest.raises(EngineError, match="no log-probability for prompt token 8 at position 3"):
        vb.loglikelihood_result(prompt, 2, entries)
    with pytest.raises(EngineError, match="no prompt log-probabilities"):
        vb.loglikelihood_result(prompt, 2, None)


def test_finish_reasons_map_to_evalkit_and_text_follows_the_tokens(tiny_loaded) -> None:
    tokenizer = tiny_loaded.tokenizer
    eos_id = tokenizer.eos_token_id
    ids = tokenizer("Paris is red.\nMars", add_special_tokens=False)["input_ids"]
    stop = GenerateRequest("Q", 32, stop=("\n",))
    plain = GenerateRequest("Q", 32)

    def result(request, token_ids, finish, reason=None, text="vllm's text"):
        return vb.generate_result(tokenizer, request, CompletionOutput(text, token_ids, finish, reason), frozenset({eos_id}))

    eos = result(plain, ids + [eos_id], "stop", None)
    assert (eos.finish_reason, eos.text, eos.token_ids) == ("eos", "Paris is red.\nMars", (*ids, eos_id))
    assert result(plain, ids + [eos_id], "stop", eos_id).finish_reason == "eos"  # a stop_token_ids hit
    assert result(plain, ids + [eos_id], "length").finish_reason == "eos"  # EOS as the last allowed token
    by_string = result(stop, ids, "stop", "\n")
    assert (by_string.finish_reason, by_string.text) == ("stop", "Paris is red.")
    cut_at_length = result(stop, ids, "length")  # evalkit's engine cuts a stop string at the limit too
    assert (cut_at_length.finish_reason, cut_at_length.text) == ("stop", "Paris is red.")
    at_length = result(plain, ids, "length")
    assert (at_length.finish_reason, at_length.text) == ("length", "Paris is red.\nMars")
    with pytest.raises(EngineError, match="finish_reason 'abort'"):
        result(plain, ids, "abort")


# --- against evalkit's engine, through the fake -----------------------------------------------------

LOGLIKELIHOOD_REQUESTS = [
    *CANARIES,
    LoglikelihoodRequest("Question: what is two plus two?\nAnswer:", " A"),  # a repeat: scored once
    LoglikelihoodRequest("Nothing follows", ""),  # an empty continuation: 0, greedy, no tokens
]

GENERATE_REQUESTS = [
    *(r for r in GENERATION_CANARIES if r.temperature == 0),
    GenerateRequest("Write a poem about the sea", max_new_tokens=24, chat=True, system="Be brief."),
    GenerateRequest("The capital of Italy is", max_new_tokens=20, stop=("Numbers", "ital")),  # stops at "ital"
    GenerateRequest("Numbers: 0 1 2", max_new_tokens=1),
]


def test_loglikelihoods_equal_evalkit_engine(engines) -> None:
    evalkit_engine, vllm_engine = engines
    expected = evalkit_engine.loglikelihood(LOGLIKELIHOOD_REQUESTS)
    got = vllm_engine.loglikelihood(LOGLIKELIHOOD_REQUESTS)
    for want, have in zip(expected, got, strict=True):
        assert abs(want.logprob - have.logprob) <= 1e-5
        assert (want.is_greedy, want.n_tokens) == (have.is_greedy, have.n_tokens)
    assert got[-1] == expected[-1] and got[-1].n_tokens == 0
    # The repeated request and the empty continuation never reach vLLM.
    assert FakeLLM.instances[-1].calls == [len(LOGLIKELIHOOD_REQUESTS) - 2]


def test_greedy_generations_equal_evalkit_engine(engines) -> None:
    evalkit_engine, vllm_engine = engines
    expected = evalkit_engine.generate(GENERATE_REQUESTS)
    got = vllm_engine.generate(GENERATE_REQUESTS)
    assert got == expected
    assert {r.finish_reason for r in got} >= {"length", "stop"}


def test_results_come_back_in_input_order_and_max_rows_caps_each_call(engines) -> None:
    _, vllm_engine = engines
    requests = GENERATE_REQUESTS[:5]
    yielded = list(vllm_engine.iter_generate(requests, max_rows=2))
    assert [index for index, _ in yielded] == [0, 1, 2, 3, 4]
    assert FakeLLM.instances[-1].calls == [2, 2, 1]
    forward = vllm_engine.generate(requests)
    assert vllm_engine.generate(requests[::-1])[::-1] == forward
    assert [r for _, r in yielded] == forward
    reversed_ll = vllm_engine.loglikelihood(LOGLIKELIHOOD_REQUESTS[::-1])[::-1]
    assert reversed_ll == vllm_engine.loglikelihood(LOGLIKELIHOOD_REQUESTS)


def test_progress_counts_every_request(engines) -> None:
    _, vllm_engine = engines
    counted: list[int] = []
    list(vllm_engine.iter_loglikelihood(LOGLIKELIHOOD_REQUESTS, counted.append))
    list(vllm_engine.iter_generate(GENERATE_REQUESTS, counted.append))
    assert sum(counted) == len(LOGLIKELIHOOD_REQUESTS) + len(GENERATE_REQUESTS)


def test_the_report_self_tests_run_on_the_vllm_engine(engines) -> None:
    _, vllm_engine = engines
    assert invariance_self_test(vllm_engine)["bit_identical"] is True
    assert generation_self_test(vllm_engine)["identical"] is True


# --- wiring: --backend, the loader on the meta device, the report --------------------------------------


def test_the_checks_load_no_weights_but_still_refuse_a_bad_checkpoint(tiny_llama_dir, tmp_path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    from evalkit.errors import ModelError

    checked = load_model(tiny_llama_dir, device="cpu", dtype="float32", weights=False)
    assert {p.device.type for p in checked.model.parameters()} == {"meta"}
    assert checked.chat_template_sha256 is not None and checked.format == "safetensors"
    broken = tmp_path / "tiny"
    shutil.copytree(tiny_llama_dir, broken)
    state = load_file(broken / "model.safetensors")
    del state["model.norm.weight"]
    save_file(state, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match=r"lacks 1 weight\(s\) the model needs \(first: model.norm.weight\)"):
        load_model(broken, device="cpu", dtype="float32", weights=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"device": "cpu"}, "--backend vllm runs on CUDA GPUs; drop --device cpu"),
        ({"device": "cuda:1"}, "cannot pick cuda:1; choose GPUs with CUDA_VISIBLE_DEVICES"),
        ({"model": "/models/m.gguf"}, "not .gguf files"),
        ({"judge": "/models/judge"}, "judge in a separate run with --backend evalkit"),
    ],
)
def test_vllm_runs_it_cannot_do_are_refused_before_loading(fake_vllm, change, message) -> None:
    from evalkit import backends
    from evalkit.config import RunConfig, SuiteSpec
    from evalkit.errors import ConfigError

    config = RunConfig(model="/models/m", suites=(SuiteSpec(suite="mmlu"),), backend="vllm").model_copy(update=change)
    with pytest.raises(ConfigError, match=message):
        backends.check_plan(config, ["multiple_choice"])
    with pytest.raises(ConfigError, match="the perf suite times evalkit's own engine"):
        backends.check_plan(config.model_copy(update={"device": "auto", "model": "/m", "judge": None}), ["performance"])
    backends.check_plan(config.model_copy(update={"backend": "evalkit"}), ["performance"])  # evalkit: nothing to refuse


def test_a_run_with_backend_vllm_uses_vllm_and_records_it(fake_vllm, monkeypatch, tiny_llama_dir, tmp_path) -> None:
    from evalkit.config import RunConfig, SuiteSpec
    from evalkit.runner import run_evaluation

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    config = RunConfig(
        model=str(tiny_llama_dir), suites=(SuiteSpec(suite="mmlu", limit=2), SuiteSpec(suite="xstest", limit=2)),
        backend="vllm", dtype="float32", batch_size=4,
    )
    report = run_evaluation(config, tmp_path / "out").report
    backend = report["engine"]["backend"]
    assert backend["name"] == "vllm" and backend["tensor_parallel_size"] == 1 and backend["max_num_seqs"] == 4
    assert report["config"]["backend"] == "vllm" and report["precision"]["device"] == "cuda"
    assert report["engine"]["token_budget_reason"].startswith("not used: vLLM")
    assert report["model"]["parameters"] > 0  # counted on the meta device
    assert report["determinism"]["self_test"]["bit_identical"] is True
    assert FakeLLM.instances[-1].kwargs["dtype"] == "float32"
    assert sum(FakeLLM.instances[-1].calls) > 0


# --- the real vLLM on a GPU (skipped unless vllm is importable and CUDA is available) ---------------


@pytest.fixture(scope="module")
def real_vllm_engine(tiny_llama_dir: Path):
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("the vLLM backend needs a CUDA GPU")
    return vb.VllmEngine.from_folder(tiny_llama_dir, settings=EngineSettings(max_rows=8), dtype="float32", seed=3)


@pytest.mark.slow
def test_real_vllm_loglikelihoods_match_evalkit_engine_in_fp32(real_vllm_engine, tiny_llama_dir) -> None:
    loaded = load_model(tiny_llama_dir, device="cuda", dtype="float32")
    expected = Engine(loaded.model, loaded.tokenizer, EngineSettings(max_rows=8)).loglikelihood(LOGLIKELIHOOD_REQUESTS)
    got = real_vllm_engine.loglikelihood(LOGLIKELIHOOD_REQUESTS)
    for want, have in zip(expected, got, strict=True):
        assert abs(want.logprob - have.logprob) <= 1e-4
        assert (want.is_greedy, want.n_tokens) == (have.is_greedy, have.n_tokens)


@pytest.mark.slow
def test_real_vllm_greedy_generation_matches_evalkit_engine(real_vllm_engine, tiny_llama_dir) -> None:
    loaded = load_model(tiny_llama_dir, device="cuda", dtype="float32")
    expected = Engine(loaded.model, loaded.tokenizer, EngineSettings(max_rows=8)).generate(GENERATE_REQUESTS)
    assert real_vllm_engine.generate(GENERATE_REQUESTS) == expected


def test_bench_generate_with_vllm_needs_vllm_and_says_so_in_one_line(tiny_llama_dir):
    """`scripts/bench_generate.py --with-vllm` where vLLM cannot run is a one-line usage error,
    before any worker starts."""
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_generate.py"
    done = subprocess.run(
        [sys.executable, str(script), "--model", str(tiny_llama_dir), "--with-vllm"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("bench_generate.py: error: --with-vllm:") and "pip install" in last
