"""What a serving cell's loads send: the suite's trace or recorded bodies with their send times, the distinct
texts made up front, and request i as the load generator asks for it (harness/load/generator.py), with the
content harness/load/content.py adds (shared prefix, conversation so far, images)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.core.backend import CellModels
from harness.core.schema import CellSpec
from harness.kinds.serving import ServingParams
from harness.load.client import RequestInput
from harness.load.content import PREFIX_INDEX_BASE, BlockPrompts, RequestMaker, image_sets
from harness.load.exports import RecordedPayload, read_payloads
from harness.load.generator import LoadSpec
from harness.load.prompt_tokenizer import (
    MODEL,
    calibrate,
    exact_prompt,
    load_prompt_tokenizer,
    usage_prompt,
)
from harness.load.traces import BLOCK_TOKENS, TraceRequest, read_trace

MAX_DISTINCT_PROMPTS = 512


@dataclass(frozen=True)
class Schedule:
    """A trace or replay cell's given send times and what each request is (empty lists otherwise)."""

    arrivals: tuple[float, ...] | None
    trace: list[TraceRequest]
    replay: list[RecordedPayload]  # the measured bodies
    replay_warmup: list[RecordedPayload]


def schedule(p: ServingParams, given: set[str]) -> Schedule:
    """The cell's trace or recorded payloads, as many as `requests` when the suite gave it (else all), at
    their times × trace_time_scale, the first at 0."""
    trace: list[TraceRequest] = read_trace(p.trace, p.trace_format).requests if p.trace else []
    recorded = read_payloads(p.replay_payloads) if p.replay_payloads else []
    replay = sorted((r for r in recorded if not r.warmup), key=lambda r: r.t_s)  # sent in time order
    times = [r.t_s for r in trace] or [r.t_s - replay[0].t_s for r in replay]
    if not times:
        return Schedule(None, [], [], [])
    n = min(len(times), p.requests) if "requests" in given else len(times)
    return Schedule(tuple(t * p.trace_time_scale for t in times[:n]), trace[:n], replay[:n],
                    [r for r in recorded if r.warmup])


@dataclass(frozen=True)
class PromptPlan:
    """The cell's distinct texts: how many, and each one's input length (None: the suite's prompt file or
    recorded bodies) and the output length asked for with it."""

    count: int
    in_lens: list[int] | None
    out_lens: list[int]
    blocks: list[tuple[int, ...]] = field(default_factory=list)  # a trace's hash blocks per text (or none)


def texts_per_request(p: ServingParams) -> int:
    """Texts one request sends: its documents, after the query for rerank."""
    return p.texts_per_call() + (p.api == "rerank")


def cancelled_indices(fraction: float, seed: int, count: int) -> set[int]:
    """Which measured requests (0..count-1) the client cancels: each with probability `fraction`, seeded."""
    if fraction <= 0:
        return set()
    import numpy as np

    draws = np.random.default_rng([seed, 16]).random(count)
    return {i for i in range(count) if draws[i] < fraction}


def prompt_maker(cell: CellSpec, p: ServingParams, models: CellModels,
                 count_tokens: Callable[[str], int | None]) -> tuple[Callable[[int, int], str], str]:
    """((index, tokens) -> synthetic text of that many tokens, where the counts come from): exact under the
    tokenizer the scenario names, or calibrated on the server's usage counts when it names none."""
    style = cell.prompts.style
    source = p.tokenizer_source(cell.remote)
    tok = load_prompt_tokenizer(source, models.target if source == MODEL else None)
    if tok is not None:
        return (lambda i, n: exact_prompt(i, n, tok, style)), source
    calibration = calibrate(count_tokens, style)
    said = source if calibration else f"{source}: none reported, lengths nominal (a token a word, 4 a code line)"
    return (lambda i, n: usage_prompt(i, n, calibration, style)), said


class Requests:
    """The cell's requests: `maker(i)` makes request i (warm-up ones i < 0) for the load generator, from
    the recorded bodies or from the texts `make_texts` made once the server is up (without a tokenizer, its
    usage counts calibrate their lengths)."""

    def __init__(self, cell: CellSpec, p: ServingParams, given: Schedule, plan: PromptPlan, spec: LoadSpec) -> None:
        self.cell, self.p, self.given, self.plan = cell, p, given, plan
        self.per_request = p.texts_per_call()
        self.texts_per_request = texts_per_request(p)
        self.cancel = cancelled_indices(p.cancel_fraction, spec.seed, spec.requests)
        self.prompts: list[str] = []
        # the shared prefixes are made with the prompts
        self.maker = RequestMaker(
            self.plain, turns=p.turns, prefixes=[],
            images=image_sets(min(spec.requests + spec.warmup, MAX_DISTINCT_PROMPTS), p.images_per_request,
                              p.image_size) if p.images_per_request else [])

    def make_texts(self, models: CellModels, count_tokens: Callable[[str], int | None]) -> str | None:
        """Make the prompts and shared prefixes; returns what counted their tokens, None when no text was made
        to a length (the suite's prompt file without a shared prefix, or recorded bodies)."""
        cell, p, plan = self.cell, self.p, self.plan
        if self.given.replay:
            return None
        if cell.prompts.source == "file":
            self.prompts += [cell.prompts.texts[i % len(cell.prompts.texts)] for i in range(plan.count)]
            if not p.shared_prefix_tokens:
                return None
        make, counted_by = prompt_maker(cell, p, models, count_tokens)
        if cell.prompts.source != "file":
            assert cell.prompts.input_tokens is not None
            with_blocks = BlockPrompts(make, BLOCK_TOKENS)
            self.prompts += [with_blocks(i, plan.in_lens[i], plan.blocks[i]) if plan.blocks and plan.in_lens
                             else make(i, plan.in_lens[i] if plan.in_lens else cell.prompts.input_tokens)
                             for i in range(plan.count)]
        if p.shared_prefix_tokens:  # synthetic, from an index range the prompts never reach
            self.maker.prefixes = [make(PREFIX_INDEX_BASE + g, p.shared_prefix_tokens) for g in range(p.prefix_groups)]
        return counted_by

    def first_text(self, i: int) -> int:
        """Index (into prompts) of request i's first text; warm-up requests (i < 0) take prompts from the
        end, after the measured ones when none repeat."""
        per_request, prompts = self.per_request, self.prompts
        return (i if i >= 0 else len(prompts) // per_request - 1 - (-1 - i)) * per_request % len(prompts)

    def plain(self, i: int) -> RequestInput:
        """Request i before harness/load/content.py adds to it."""
        if self.given.replay:
            rec = self.given.replay[i] if i >= 0 else self.given.replay_warmup[-1 - i]
            return RequestInput(api=rec.api, prompt="", stream=bool(rec.body.get("stream")), index=i, body=rec.body)
        idx = self.first_text(i)
        texts = [self.prompts[(idx + k) % len(self.prompts)] for k in range(self.texts_per_request)]
        return RequestInput(api=self.p.api, prompt=texts[0], documents=tuple(texts[1:]),
                            max_tokens=self.plan.out_lens[idx], ignore_eos=self.cell.generation.ignore_eos,
                            stream=self.p.stream, index=i,
                            cancel_after=self.p.cancel_after_tokens if i in self.cancel else None)

    def readings(self, i: int) -> dict[str, float]:
        """What measured request i's Sample records beside its timings: its place in its conversation, and the
        texts it sent or the tokens it asked for (the token-count check compares with them)."""
        readings = self.maker.readings(i)
        if self.p.api in ("embeddings", "rerank"):
            readings["documents"] = self.per_request
        else:
            readings["max_tokens"] = (self.plan.out_lens[self.first_text(i)] if not self.given.replay else
                                      self.given.replay[i].body.get("max_tokens") or 0)
        return readings
