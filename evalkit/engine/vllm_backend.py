"""An optional vLLM backend behind the Engine interface: large models and several GPUs on an
existing engine (`pip install 'evalkit[vllm]'`, then `evalkit run --backend vllm`).

evalkit's own engine runs one model on one device. Past that, the design says to use an existing
engine rather than grow a home-made one: vLLM pages the key/value cache, shards a model over the
visible GPUs (tensor parallel) and batches continuously. `VllmEngine` adapts it to evalkit's
requests and results, so nothing above the engine changes, and keeps evalkit's meaning of every
number:
- Log-likelihood: evalkit tokenizes (encode_pair, lm-eval's rule) and sends token ids; vLLM returns
  the prompt's log-probabilities (prompt_logprobs=1, fp32 log-softmax) and we sum the
  continuation's in fp64, in token order; a token is greedy when vLLM ranks it first.
- Generation: the prompt ids are evalkit's (prompt_ids: the same chat template and truncation),
  greedy at temperature 0, otherwise sampled by vLLM from the request's own seed (so a completion
  depends on its sample only, though vLLM's sampler draws differently from engine/sampling.py).
  The text is decoded from the token ids by evalkit's tokenizer and cut at stop strings as the
  evalkit engine does, and vLLM's finish reason becomes "stop" | "eos" | "length".

vllm is imported inside functions only: importing evalkit never imports vllm. Everything stays
offline: a local folder only, trust_remote_code off, the hub and vLLM's usage statistics disabled.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from evalkit.engine import DEFAULT_MAX_LENGTH, EngineSettings
from evalkit.engine.generate import _cut_at_stop, eos_token_ids, prompt_ids
from evalkit.engine.requests import (
    FinishReason,
    GenerateRequest,
    GenerateResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
)
from evalkit.engine.tokenize import encode_pair
from evalkit.errors import EngineError

INSTALL_HINT = "pip install 'evalkit[vllm]'"
# Requests per LLM.generate call: results reach the caller (and the run's journal) chunk by
# chunk, while each chunk is still large enough for vLLM to keep its batch full.
CHUNK = 1024
# Set for every vLLM run (offline by construction): no hub lookups, no usage statistics sent.
OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}


def import_vllm() -> SimpleNamespace:
    """vLLM's LLM, SamplingParams and TokensPrompt, or a one-line EngineError saying how to get them."""
    try:
        import vllm
        from vllm.inputs import TokensPrompt
    except ImportError as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EngineError(
            f"--backend vllm needs vLLM, which is not importable here ({why}); "
            f"{INSTALL_HINT} on a CUDA machine, or use --backend evalkit"
        ) from None
    return SimpleNamespace(
        LLM=vllm.LLM,
        SamplingParams=vllm.SamplingParams,
        TokensPrompt=TokensPrompt,
        version=str(getattr(vllm, "__version__", "unknown")),
    )


def require_cuda() -> int:
    """The number of visible CUDA devices, or a one-line EngineError when there is none."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 1:
        raise EngineError(
            "--backend vllm runs on CUDA GPUs and none is visible here (no GPU, a CPU-only torch, or "
            "CUDA_VISIBLE_DEVICES empty); use --backend evalkit"
        )
    return int(torch.cuda.device_count())


def default_tensor_parallel_size(gpus: int, attention_heads: int | None) -> int:
    """All visible GPUs, or the most of them that divide the attention heads (vLLM shards heads
    evenly and refuses a size that does not divide them)."""
    if not attention_heads:
        return max(1, gpus)
    return max(n for n in range(1, max(1, gpus) + 1) if attention_heads % n == 0)


def sampling_params(vllm: Any, request: GenerateRequest, eos_ids: frozenset[int]) -> Any:
    """vLLM's SamplingParams for one generation request.

    temperature 0 is greedy in both engines (argmax); top_k 0 (evalkit: whole vocabulary) is
    vLLM's -1, which every vLLM release accepts. The end-of-sequence ids are evalkit's (the
    generation config's and the tokenizer's) so both engines stop on the same tokens. Stop strings
    are not kept in the text, special tokens are skipped, as in evalkit's engine.
    """
    return vllm.SamplingParams(
        n=1,
        temperature=float(request.temperature),
        top_p=float(request.top_p),
        top_k=int(request.top_k) if request.top_k > 0 else -1,
        seed=int(request.seed),
        max_tokens=int(request.max_new_tokens),
        stop=list(request.stop) or None,
        stop_token_ids=sorted(eos_ids),
        include_stop_str_in_output=False,
        skip_special_tokens=True,
    )


def loglikelihood_params(vllm: Any) -> Any:
    """Score the prompt: its log-probabilities with the top token's (for the rank), one new token
    (vLLM must generate at least one), not detokenized."""
    return vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1, prompt_logprobs=1, detokenize=False)


def loglikelihood_prompt(tokenizer: Any, request: LoglikelihoodRequest, max_length: int) -> tuple[list[int], int]:
    """(prompt ids, how many of its last tokens are the continuation) for a log-likelihood request.

    Tokenized exactly as evalkit's engine (encode_pair). The prompt holds the continuation too:
    vLLM gives each prompt token's log-probability given the tokens before it. A prompt keeps its
    last max_length - 1 tokens (vLLM needs room for the one generated token); evalkit's engine keeps
    max_length + 1, so only inputs longer than the window see a different (shorter) context.
    """
    context_ids, continuation_ids = encode_pair(tokenizer, request.context, request.continuation)
    whole = (context_ids + continuation_ids)[-(max_length - 1):]
    return whole, min(len(continuation_ids), len(whole) - 1)


def loglikelihood_result(
    prompt: Sequence[int], n_targets: int, prompt_logprobs: Sequence[Mapping[int, Any] | None] | None
) -> LoglikelihoodResult:
    """Sum the last n_targets prompt tokens' log-probabilities (fp64, token order).

    prompt_logprobs: vLLM's RequestOutput.prompt_logprobs, one entry per prompt token (None for the
    first), each a dict token id -> Logprob(logprob, rank) holding at least that token. A token is
    greedy when its rank is 1 (vLLM counts the tokens at least as likely, so a tie is not greedy);
    a Logprob without a rank is compared with the best log-probability listed.
    """
    if prompt_logprobs is None or len(prompt_logprobs) != len(prompt):
        raise EngineError(
            "vLLM returned no prompt log-probabilities for a log-likelihood request; "
            "this vLLM does not support prompt_logprobs (use vllm>=0.6 or --backend evalkit)"
        )
    total, greedy = 0.0, True
    for position in range(len(prompt) - n_targets, len(prompt)):
        entries = prompt_logprobs[position]
        token = int(prompt[position])
        if not entries or token not in entries:
            raise EngineError(f"vLLM returned no log-probability for prompt token {token} at position {position}")
        entry = entries[token]
        total += float(entry.logprob)
        rank = getattr(entry, "rank", None)
        if rank is None:
            greedy = greedy and float(entry.logprob) >= max(float(e.logprob) for e in entries.values())
        else:
            greedy = greedy and int(rank) == 1
    return LoglikelihoodResult(logprob=total, is_greedy=greedy, n_tokens=n_targets)


def finish_reason(completion: Any, eos_ids: frozenset[int]) -> FinishReason:
    """evalkit's finish reason from vLLM's CompletionOutput.

    vLLM says "stop" both for a stop string (stop_reason is the string) and for an end-of-sequence
    token (stop_reason None for the tokenizer's, the token id for one of stop_token_ids). It checks
    the length limit first, so an end-of-sequence token that is also the last allowed one comes
    back as "length": evalkit's engine calls that "eos".
    """
    ids = completion.token_ids
    if completion.finish_reason == "stop":
        return "stop" if isinstance(completion.stop_reason, str) else "eos"
    if completion.finish_reason == "length":
        return "eos" if ids and int(ids[-1]) in eos_ids else "length"
    raise EngineError(
        f"vLLM ended a generation with finish_reason {completion.finish_reason!r}; "
        "rerun, or use --backend evalkit"
    )


def generate_result(
    tokenizer: Any, request: GenerateRequest, completion: Any, eos_ids: frozenset[int]
) -> GenerateResult:
    """evalkit's GenerateResult from vLLM's CompletionOutput.

    The text is decoded from the token ids by evalkit's tokenizer and cut before the first stop
    string, as evalkit's engine does, so the same tokens always give the same text whichever engine
    made them (vLLM's own incremental detokenizer may differ in clean-up details).
    """
    ids = tuple(int(t) for t in completion.token_ids)
    finish = finish_reason(completion, eos_ids)
    if finish == "eos":
        body = ids[:-1] if ids and ids[-1] in eos_ids else ids
        text = tokenizer.decode(list(body), skip_special_tokens=True)
    else:
        text = tokenizer.decode(list(ids), skip_special_tokens=True)
        cut = _cut_at_stop(text, request.stop) if request.stop else None
        if cut is not None:
            finish, text = "stop", cut
        elif finish == "stop":  # vLLM saw a stop string our decoding does not show: keep its text
            text = str(completion.text)
    return GenerateResult(text=text, token_ids=ids, finish_reason=finish)


@dataclass(frozen=True)
class VllmSetup:
    """What the report records about the backend."""

    version: str
    tensor_parallel_size: int
    max_num_seqs: int
    dtype: str
    batch_invariant: bool

    def describe(self) -> dict[str, Any]:
        return {
            "name": "vllm",
            "version": self.version,
            "tensor_parallel_size": self.tensor_parallel_size,
            "max_num_seqs": self.max_num_seqs,
            "dtype": self.dtype,
            "batch_invariant": self.batch_invariant,
            "weights": "loaded by vLLM; evalkit's loader checked the checkpoint on the meta device",
        }


class VllmEngine:
    """The Engine interface (iter_loglikelihood, loglikelihood, iter_generate, generate, settings,
    max_length) served by a vLLM `LLM`.

    settings.max_rows is vLLM's max_num_seqs; a per-call `max_rows` sends the requests in groups of
    that many, so no more run together. token_budget and deterministic do not apply: vLLM plans
    its own batches (set VLLM_BATCH_INVARIANT=1 where vLLM supports it for batch-invariant numbers;
    the report's invariance self-test says whether they held).
    """

    def __init__(
        self, llm: Any, vllm: SimpleNamespace, tokenizer: Any, settings: EngineSettings, *,
        max_length: int, eos_ids: frozenset[int], setup: VllmSetup,
    ):
        self.llm = llm
        self.vllm = vllm
        self.tokenizer = tokenizer
        self.settings = settings
        self.max_length = max_length
        self.eos_ids = eos_ids
        self.setup = setup

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        tokenizer: Any | None = None,
        model: Any | None = None,
        settings: EngineSettings | None = None,
        dtype: str = "bfloat16",
        seed: int = 0,
        tensor_parallel_size: int | None = None,
        weights_format: str = "safetensors",
    ) -> VllmEngine:
        """A vLLM engine for a local Hugging Face folder.

        tokenizer, model: evalkit's (from load_model; the model may sit on the meta device): its
            config gives the window and its generation config the end-of-sequence ids. Loaded from
            the folder, locally, when not given.
        tensor_parallel_size: default all visible GPUs (the most that divide the attention heads).
        weights_format: "safetensors" or "pickle" (only what evalkit's loader accepted is read).
        """
        settings = settings or EngineSettings()
        vllm = import_vllm()
        gpus = require_cuda()
        source = Path(folder).expanduser()
        if not source.is_dir():
            raise EngineError(
                f"--backend vllm loads a local Hugging Face folder, and {source} is not one "
                "(a .gguf file needs --backend evalkit)"
            )
        os.environ.update(OFFLINE_ENVIRONMENT)
        tokenizer, model = _local_model_facts(source, tokenizer, model)
        config = model.config
        max_length = int(getattr(config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH)
        tp = tensor_parallel_size or default_tensor_parallel_size(gpus, getattr(config, "num_attention_heads", None))
        llm = vllm.LLM(
            model=str(source),
            tokenizer=str(source),
            dtype=dtype,
            seed=int(seed),
            tensor_parallel_size=int(tp),
            trust_remote_code=False,
            max_model_len=max_length,
            max_num_seqs=int(settings.max_rows),
            load_format="pt" if weights_format == "pickle" else "safetensors",
        )
        setup = VllmSetup(
            version=vllm.version, tensor_parallel_size=int(tp), max_num_seqs=int(settings.max_rows), dtype=dtype,
            batch_invariant=os.environ.get("VLLM_BATCH_INVARIANT", "0") not in ("", "0"),
        )
        return cls(llm, vllm, tokenizer, settings, max_length=max_length,
                   eos_ids=eos_token_ids(model, tokenizer), setup=setup)

    def _run(self, prompts: Sequence[list[int]], params: Sequence[Any]) -> list[Any]:
        """LLM.generate on token-id prompts; outputs in the order given."""
        outputs = self.llm.generate(
            [self.vllm.TokensPrompt(prompt_token_ids=list(p)) for p in prompts], list(params), use_tqdm=False
        )
        if len(outputs) != len(prompts):
            raise EngineError(f"vLLM answered {len(outputs)} of {len(prompts)} requests; rerun, or use --backend evalkit")
        return list(outputs)

    def _chunk(self, max_rows: int | None) -> int:
        return CHUNK if max_rows is None else max(1, max_rows)

    def iter_loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: Callable[[int], None] | None = None,
        *, max_rows: int | None = None,
    ) -> Iterator[tuple[int, LoglikelihoodResult]]:
        # Identical token sequences are scored once (the self-test's canaries, repeated choices).
        unique: dict[tuple[tuple[int, ...], int], list[int]] = {}
        for index, request in enumerate(requests):
            prompt, n_targets = loglikelihood_prompt(self.tokenizer, request, self.max_length)
            if n_targets == 0:  # an empty continuation: nothing to score, as in evalkit's engine
                yield index, LoglikelihoodResult(logprob=0.0, is_greedy=True, n_tokens=0)
                if progress is not None:
                    progress(1)
                continue
            unique.setdefault((tuple(prompt), n_targets), []).append(index)
        keys = list(unique)
        params = loglikelihood_params(self.vllm)
        step = self._chunk(max_rows)
        for start in range(0, len(keys), step):
            chunk = keys[start:start + step]
            outputs = self._run([list(p) for p, _ in chunk], [params] * len(chunk))
            served = 0
            for (prompt, n_targets), output in zip(chunk, outputs):
                result = loglikelihood_result(prompt, n_targets, output.prompt_logprobs)
                for index in unique[(prompt, n_targets)]:
                    yield index, result
                    served += 1
            if progress is not None:
                progress(served)

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], *, max_rows: int | None = None
    ) -> list[LoglikelihoodResult]:
        """Results in input order; `max_rows` caps how many requests vLLM runs together in this call."""
        return _in_order(len(requests), self.iter_loglikelihood(requests, max_rows=max_rows))

    def iter_generate(
        self, requests: Sequence[GenerateRequest], progress: Callable[[int], None] | None = None,
        *, max_rows: int | None = None,
    ) -> Iterator[tuple[int, GenerateResult]]:
        prompts = [prompt_ids(self.tokenizer, r, self.max_length) for r in requests]
        step = self._chunk(max_rows)
        for start in range(0, len(requests), step):
            indices = range(start, min(start + step, len(requests)))
            outputs = self._run(
                [prompts[i] for i in indices], [sampling_params(self.vllm, requests[i], self.eos_ids) for i in indices]
            )
            for i, output in zip(indices, outputs):
                yield i, generate_result(self.tokenizer, requests[i], output.outputs[0], self.eos_ids)
            if progress is not None:
                progress(len(indices))

    def generate(self, requests: Sequence[GenerateRequest], *, max_rows: int | None = None) -> list[GenerateResult]:
        """Results in input order; `max_rows` caps how many requests vLLM runs together in this call."""
        return _in_order(len(requests), self.iter_generate(requests, max_rows=max_rows))


def _local_model_facts(source: Path, tokenizer: Any | None, model: Any | None) -> tuple[Any, Any]:
    """evalkit's tokenizer and an object with the model's `config` and `generation_config`, read
    from the folder with local files only when the caller has none."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    local = {"local_files_only": True, "trust_remote_code": False}
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(source, **local)
    if model is None:
        config = AutoConfig.from_pretrained(source, **local)
        try:
            generation = GenerationConfig.from_pretrained(source, local_files_only=True)
        except OSError:  # no generation_config.json: the model config's ids, as transformers does
            generation = GenerationConfig.from_model_config(config)
        model = SimpleNamespace(config=config, generation_config=generation)
    return tokenizer, model


def _in_order(n: int, results: Iterator[tuple[int, Any]]) -> list[Any]:
    ordered: list[Any] = [None] * n
    for index, result in results:
        ordered[index] = result
    return ordered
