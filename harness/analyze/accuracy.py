"""Accuracy of lower-precision cells against the fp16 reference of the same run.

For a greedy text-generation cell at int8/int4, the reference is the plain greedy fp16 cell of the
same model, device, prompts, generation settings and properties. Its outputs are compared prompt
by prompt (by prompt index); embeddings by cosine similarity of the vectors and rerank by the rank
correlation of the scores, on the first measured call; the figures become per-cell values (so reports, gates and comparisons
see them like any other metric) and an `accuracy_vs_fp16` check. Recomputed whenever results are
assembled, so a resumed run or re-rendered report never keeps stale figures."""

from __future__ import annotations

import difflib
import statistics

from harness.core.escaping import json_of
from harness.core.metrics import FirstDivergence, OutputSimilarity, TokenMatch
from harness.core.schema import CellResult, CheckResult
from harness.kinds import KINDS, kind_spec

REFERENCE_PRECISION = "fp16"
TEXT_ACCURACY_TAGS = (TokenMatch.tag, FirstDivergence.tag, OutputSimilarity.tag)
# every figure an accuracy check may set: the text ones and each kind's accuracy columns
ACCURACY_TAGS = tuple(dict.fromkeys((*TEXT_ACCURACY_TAGS, *(col.metric for k in KINDS.values() for col in k.report.accuracy))))


def _signature(r: CellResult) -> tuple:
    s = r.spec
    return (s.model.name, s.model.source, s.device, json_of(s.prompts), json_of(s.generation),
            tuple(sorted(s.properties.items())), s.environment, s.runtime)


def token_match(a: list[int], b: list[int]) -> float:
    """Share of positions (over the longer output) holding the same token, in %."""
    n = max(len(a), len(b))
    return 100.0 if n == 0 else 100.0 * sum(x == y for x, y in zip(a, b, strict=False)) / n


def first_divergence_index(a: list[int], b: list[int]) -> int:
    """Index of the first differing token; the common length when one output is a prefix of the other."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def similarity(a: str, b: str) -> float:
    """difflib's SequenceMatcher ratio of two texts, in % (100 = identical)."""
    return 100.0 * difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _pytorch_reference(r: CellResult, cells: list[CellResult]) -> CellResult | None:
    """The suite's PyTorch cell of the same model, prompts and generation settings (any device or precision
    axis value: it runs the original weights in f32 on the CPU)."""
    s = r.spec
    return next((c for c in cells if kind_spec(c.spec.scenario.kind).original_weights and c.spec.model.name == s.model.name
                 and c.spec.prompts == s.prompts and c.spec.generation == s.generation), None)


def _reference(r: CellResult, cells: list[CellResult]) -> CellResult | None:
    """Text generation: the PyTorch cell when the suite has one, else the plain greedy fp16 cell; kinds referenced
    by themselves (kind registry): the fp16 cell of the same kind and parameters."""
    sig, kind = _signature(r), r.spec.scenario.kind
    if kind_spec(kind).reference == "same_kind":
        return next((c for c in cells if c.spec.precision == REFERENCE_PRECISION and c.spec.scenario.kind == kind
                     and c.spec.scenario.params == r.spec.scenario.params and _signature(c) == sig), None)
    torch_ref = _pytorch_reference(r, cells)
    if torch_ref is not None:
        return torch_ref
    return next((c for c in cells if c.spec.precision == REFERENCE_PRECISION and kind_spec(c.spec.scenario.kind).greedy_reference
                 and _signature(c) == sig), None)


def _kept_output_figures(r: CellResult, ref: CellResult) -> tuple[dict[str, float], str] | None:
    """The kind's comparison of the first measured call both cells kept (vectors, scores, images, audio)."""
    spec = kind_spec(r.spec.scenario.kind)
    assert spec.compare_outputs is not None
    mine, theirs = r.check_outputs.first_outputs, ref.check_outputs.first_outputs
    common = [k for k in mine if k in theirs]
    if not common:
        return None
    return spec.compare_outputs(mine[common[0]], theirs[common[0]])


def accuracy_vs_reference(r: CellResult, cells: list[CellResult]) -> tuple[dict[str, float], CheckResult] | None:
    """The accuracy figures of `r` against its fp16 reference and the check recording them; None when `r`
    is not a lower-precision greedy cell."""
    kind, spec = r.spec.scenario.kind, kind_spec(r.spec.scenario.kind)
    if r.status != "ok" or spec.reference == "none" or r.spec.remote:
        return None  # (a remote server runs a model the harness did not make: no local reference is its own)
    if spec.compare_outputs is None and r.spec.generation.mode != "greedy":
        return None
    ref = _reference(r, cells)
    original = ref is not None and kind_spec(ref.spec.scenario.kind).original_weights
    if r.spec.precision == REFERENCE_PRECISION and not original:
        return None  # fp16 is the reference unless the suite runs the PyTorch model
    name = "accuracy_vs_pytorch" if original else f"accuracy_vs_{REFERENCE_PRECISION}"
    if ref is None:
        what = f"{kind} cell with the same parameters" if spec.reference == "same_kind" else "plain greedy cell"
        return {}, CheckResult(name=name, status="not_run",
                               detail=f"no fp16 {what}, model, device and settings in this run")
    if ref.status != "ok":
        return {}, CheckResult(name=name, status="not_run", detail=f"reference cell {ref.key} is {ref.status}")
    if spec.compare_outputs is not None:
        found = _kept_output_figures(r, ref)
        if found is None:
            return {}, CheckResult(name=name, status="not_run", detail=f"no call in common with {ref.key}")
        values, detail = found
        if not values:
            return {}, CheckResult(name=name, status="not_run", detail=f"vs {ref.key}: {detail}")
        figures = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
        return values, CheckResult(name=name, status="not_run", detail=f"{figures} vs {ref.key}; {detail}")
    ref_by_prompt = {s.prompt_index: s for s in ref.samples}
    pairs = [(s, ref_by_prompt[s.prompt_index]) for s in r.samples if s.prompt_index in ref_by_prompt]
    # one comparison per prompt: repeated prompts (no per-iteration variation) would weigh it several times
    pairs = list({s.prompt_index: (s, t) for s, t in pairs}.values())
    if not pairs:
        return {}, CheckResult(name=name, status="not_run", detail=f"no prompt in common with {ref.key}")
    # ids of one origin on both sides: generated, or both re-encoded from the text by the same tokenizer
    by_ids = all(s.output_ids and t.output_ids for s, t in pairs) and \
        len({x.output_ids_source for pair in pairs for x in pair}) == 1
    values = {OutputSimilarity.tag: statistics.fmean(similarity(s.output_text, t.output_text) for s, t in pairs)}
    matches = [token_match(s.output_ids, t.output_ids) for s, t in pairs] if by_ids else []
    if by_ids:
        values[TokenMatch.tag] = statistics.fmean(matches)
        values[FirstDivergence.tag] = float(statistics.median(
            first_divergence_index(s.output_ids, t.output_ids) for s, t in pairs))
    parts = [f"{len(pairs)} prompts vs {ref.key}"]
    if by_ids:
        reencoded = " (ids re-encoded from the texts)" if pairs[0][0].output_ids_source == "reencoded" else ""
        parts.append(f"token match {values['token_match_pct']:.1f}% (mean; median over prompts "
                     f"{statistics.median(matches):.1f}%), "
                     f"first divergence at token {values['first_divergence_tokens']:g} (median){reencoded}")
    else:
        parts.append("no token ids recorded, text similarity only")
    parts.append(f"text similarity {values['output_similarity_pct']:.1f}%")
    return values, CheckResult(name=name, status="not_run", detail="; ".join(parts))


def judged_by_gates(check: CheckResult, gate_results: list[CheckResult]) -> CheckResult:
    """The accuracy check passes or fails with the suite's gates on accuracy metrics; without such a gate
    the figures are recorded and the check says no threshold was set."""
    mine = [g for g in gate_results if g.gate is not None and g.gate.metric in ACCURACY_TAGS]
    if not mine:
        return check.model_copy(update={"detail": check.detail + "; no accuracy gate set by the suite"})
    failed = [g for g in mine if g.status == "fail"]
    status = "fail" if failed else "pass"
    limits = ", ".join(f"{g.gate.describe()} ({g.detail})" for g in (failed or mine) if g.gate is not None)
    return check.model_copy(update={"status": status, "detail": f"{check.detail}; {'missed' if failed else 'met'} "
                                                                  f"{limits}"})
