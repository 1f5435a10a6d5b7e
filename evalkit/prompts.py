"""Turning suite samples into engine requests: pure functions, no torch, no model.

A multiple-choice sample becomes one log-likelihood request per choice, all sharing one context:

    description + shot_1 + separator + ... + shot_k + separator + template(sample)

where each shot is `template(shot) + its correct choice`. A generation sample becomes one
generation request built the same way. Shots are the first k rows of the few-shot split (in file
order) whose `fewshot.match` field equals the sample's, never the sample itself: deterministic, as
lm-evaluation-harness's `first_n` sampler.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from evalkit.engine.requests import GenerateRequest, LoglikelihoodRequest
from evalkit.suite.manifest import PLACEHOLDER, SuiteManifest
from evalkit.suite.records import Sample, Suite


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Substitute `{field}` placeholders; `{{` and `}}` are literal braces. Nothing else runs."""
    out: list[str] = []
    i = 0
    while i < len(template):
        if template.startswith("{{", i) or template.startswith("}}", i):
            out.append(template[i])
            i += 2
            continue
        match = PLACEHOLDER.match(template, i)
        if match:
            out.append(str(fields[match.group(1)]))
            i = match.end()
            continue
        out.append(template[i])
        i += 1
    return "".join(out)


def choice_texts(manifest: SuiteManifest, fields: Mapping[str, Any]) -> list[str]:
    """The continuation strings of a multiple-choice sample, in choice order."""
    choices = manifest.choices
    assert choices is not None
    if choices.static is not None:
        return list(choices.static)
    values = [fields[f] for f in choices.fields] if choices.fields is not None else list(fields[choices.field])
    return [choices.delimiter + str(v) for v in values]


def target_index(manifest: SuiteManifest, fields: Mapping[str, Any]) -> int:
    assert manifest.target is not None
    raw = fields[manifest.target.field]
    if manifest.target.type == "index":
        return int(raw)
    if manifest.target.type == "labels":
        return [int(label) for label in raw].index(1)  # the first true choice (what a shot shows)
    return [c.strip() for c in choice_texts(manifest, fields)].index(str(raw).strip())


def row_target(manifest: SuiteManifest, fields: Mapping[str, Any]) -> int | list[int]:
    """What a multiple-choice row records as its target: the 0/1 labels of a `labels` target
    (the mc2 scorer reads them all), else the correct choice's index."""
    assert manifest.target is not None
    if manifest.target.type == "labels":
        return [int(label) for label in fields[manifest.target.field]]
    return target_index(manifest, fields)


def target_text(manifest: SuiteManifest, fields: Mapping[str, Any]) -> str:
    """The correct answer as text: the correct choice, or the target field for generation."""
    if manifest.kind == "multiple_choice":
        return choice_texts(manifest, fields)[target_index(manifest, fields)]
    assert manifest.target is not None
    return " " + str(fields[manifest.target.field])


def select_shots(suite: Suite, sample: Sample, k: int) -> list[Sample]:
    """The first k few-shot rows matching the sample (see module docstring)."""
    fewshot = suite.manifest.fewshot
    if k == 0 or fewshot is None:
        return []
    pool = [
        s for s in suite.split(fewshot.split)
        if s.id != sample.id and (fewshot.match is None or s.fields[fewshot.match] == sample.fields[fewshot.match])
    ]
    return pool[:k]


def _prompt_fields(manifest: SuiteManifest, fields: Mapping[str, Any]) -> Mapping[str, Any]:
    if not manifest.prompt.strip:
        return fields
    return {k: (str(v).strip() if k in manifest.prompt.strip else v) for k, v in fields.items()}


def build_context(suite: Suite, sample: Sample, k: int) -> tuple[str, str]:
    """(context, its preamble): the preamble is the description and the shots, the part of the
    context that every sample with the same shots shares."""
    manifest = suite.manifest
    separator = manifest.fewshot.separator if manifest.fewshot else "\n\n"
    shots = [
        render(manifest.prompt.template, _prompt_fields(manifest, shot.fields)) + target_text(manifest, shot.fields)
        for shot in select_shots(suite, sample, k)
    ]
    preamble = render(manifest.prompt.description, sample.fields) + "".join(s + separator for s in shots)
    return preamble + render(manifest.prompt.template, _prompt_fields(manifest, sample.fields)), preamble


@dataclass(frozen=True)
class PromptedSample:
    """A sample and the requests it needs: one per choice (multiple choice), or the suite's
    `generation.samples` generations (usually one) of the same prompt with different seeds."""

    sample: Sample
    prompt: str
    loglikelihood: tuple[LoglikelihoodRequest, ...] = ()
    generations: tuple[GenerateRequest, ...] = ()

    @property
    def generate(self) -> GenerateRequest | None:
        return self.generations[0] if self.generations else None


def sample_seed(run_seed: int, suite_name: str, sample_id: str, repeat: int) -> int:
    """The seed of one generation's random stream: a function of the run seed and the sample's
    identity only, so a sampled completion never depends on which samples shared its batch."""
    digest = hashlib.sha256(f"{run_seed}\x1f{suite_name}\x1f{sample_id}\x1f{repeat}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: torch.Generator takes a signed int64


def build_requests(
    suite: Suite,
    samples: Sequence[Sample],
    fewshot: int,
    *,
    run_seed: int = 0,
    system_prompt: str | None = None,
) -> list[PromptedSample]:
    """system_prompt: replaces the suite's own system message in chat suites (RunConfig.system_prompt)."""
    manifest = suite.manifest
    prompted: list[PromptedSample] = []
    for sample in samples:
        context, preamble = build_context(suite, sample, fewshot)
        if manifest.kind == "multiple_choice":
            # Choices taken from fields are usually several tokens long: their item's context is
            # worth computing once for all of them. Static choices (" A") share whole rows already.
            share_context = manifest.choices is not None and manifest.choices.static is None
            requests = tuple(
                LoglikelihoodRequest(context, c, shared_prefix=preamble, share_context=share_context)
                for c in choice_texts(manifest, sample.fields)
            )
            prompted.append(PromptedSample(sample, context, loglikelihood=requests))
        else:
            gen = manifest.generation_or_default
            system = system_prompt if system_prompt is not None else manifest.prompt.system
            generations = tuple(
                GenerateRequest(
                    prompt=context,
                    max_new_tokens=gen.max_new_tokens,
                    stop=tuple(gen.stop),
                    chat=manifest.prompt.chat,
                    system=system if manifest.prompt.chat else None,
                    temperature=gen.temperature,
                    top_p=gen.top_p,
                    top_k=gen.top_k,
                    seed=sample_seed(run_seed, manifest.name, sample.id, repeat),
                )
                for repeat in range(gen.samples)
            )
            prompted.append(PromptedSample(sample, context, generations=generations))
    return prompted
