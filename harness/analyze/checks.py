"""Correctness checks recorded in the results: within a cell, and across cells of a run."""

from __future__ import annotations

import numpy as np

from harness.core.metrics import unknown_tags
from harness.core.schema import CellResult, CheckResult, TokenDisagreement
from harness.kinds import kind_spec
from harness.plan import validation

CHECKS_DOC = """## Checks that must hold exactly

`matches_greedy`: speculative decoding, prompt lookup, continuous batching, Optimum Intel and the serving
completions API must give the plain greedy cell's output (same model, precision, device, prompts,
generation settings and properties): greedy decoding with a draft, a lookup table or a batch is a
faster way to the same tokens, not an approximation.

Exactness is owed only where rounding cannot decide a token. At bf16 (the CPU's default inference
precision where it has bf16 instructions) verifying several draft tokens in one forward pass, or
decoding several sequences per step, rounds differently from one-token decoding, and a near-tie between
the two best tokens can flip. So every greedy text cell whose f32 outputs something reads (a cell held to
greedy, the plain greedy cell it is held to, a cell transformers scores; no other, as the pass costs a model load
and decoding at f32) decodes its first `validation_prompts` measured
prompts (suite field, default 2) once more after its timed calls, untimed and after peak memory is read,
at `INFERENCE_PRECISION_HINT: f32` with `DYNAMIC_QUANTIZATION_GROUP_SIZE: 0` (whose kernels differ
between one and several tokens) and `KV_CACHE_PRECISION: f32` (a u8 cache quantizes keys computed five at
a time differently from the same keys computed one by one: on the int8 small model 2 of 5 prompts parted
at f32 with a u8 cache, none with an f32 one), recording the generated token ids. At f32 rounding is 2^16 times
finer, so those outputs must be identical: any difference fails the check, with the prompt and token
where they part. The timed outputs at the cell's own precision are reported beside it (how many are
equal, where the others part) and do not fail it. When either cell has no f32 outputs (an older result,
a device that refuses f32, `validation_prompts: 0`) the timed outputs are judged instead, and the
detail says so.

Proved by fault injection (`tests/integration/test_faults.py`): a pipeline that changes the middle token, drops it,
or answers another prompt fails the check; the same scenarios without the fault pass in the same run.

`matches_transformers`: matches_greedy holds the other pipelines to OpenVINO's own plain greedy cell; this holds
that cell to an independent implementation, so a wrong greedy path fails even in a suite with nothing else to
compare it with. A plain greedy cell at fp16 whose model has
Hugging Face weights (a synthetic model, a Hugging Face folder or id; an IR folder has none, and the check is
then not run with that reason; int8 / int4 IRs hold NNCF's weights, not these) has its f32 outputs scored by
transformers (PyTorch, f32, the weights rounded to float16 as the IR stores them), in its own process after
the measuring ones, fed the prompt ids the pipeline was fed: one forward pass over prompt and output gives
transformers' greedy choice at every position given OpenVINO's prefix, so OpenVINO's output is transformers'
own greedy decoding exactly when every choice is OpenVINO's token (harness/execute/transformers_reference.py).
Under `ignore_eos` EOS is a token like any other, as openvino-genai treats it; otherwise an output ending
early must end where transformers' choice is a stop token. Where transformers chooses another token it fails,
naming the prompt, the position and both tokens, unless transformers' logits for the two are within
`transformers_tolerance` (default 0.05 nats; the two implementations' f32 logits differ by at most 2e-4 on
SmolLM2-135M): a float near-tie, reported beside the pass. It also fails when the pipeline counted other prompt
tokens than its tokenizer gives for the prompt. On where a suite sets `transformers_check: true` (the shipped default, builtin and smoke suites do); it
costs one process per scored cell, measured here at ~8 s of CPU on tiny and ~14 s on SmolLM2-135M (2 prompts of
128 + 64 tokens), 7.5 s of either importing torch and transformers. A pipeline that changes or drops the middle
token passes every other check of a suite with only plain greedy cells, and fails this one
(tests/integration/test_faults.py).

`exact_token_count` (every call yields `max_new_tokens` under `ignore_eos`) and `repeat_determinism`
(the first measured prompt decoded again by the same pipeline gives the same text) are exact at any
precision.

`input_length` (plain, speculative and prompt-lookup generation on synthetic prompts): every call's input,
as the pipeline counted it (PerfMetrics' input tokens), is within one token (a BOS the tokenizer adds) of the
length the cell asks for, the chat template's own tokens included when `generation.apply_chat_template` is
set. A cell keyed `in128` is then measured on 128 of the model's own tokens; a prompt tokenizer that disagrees
with the pipeline's (the fault a GGUF-converted tokenizer showed: 128 asked, 26-36 measured) fails it.
"""



def _measured(r: CellResult):
    return [s for s in r.samples if not s.warmup]


def exact_token_count(r: CellResult) -> CheckResult | None:
    """With ignore_eos (or min_new_tokens >= max_new_tokens) every call must yield max_new_tokens."""
    g = r.spec.generation
    kind = kind_spec(r.spec.scenario.kind)
    if not (g.ignore_eos or g.min_new_tokens >= g.max_new_tokens) or not r.samples or not kind.generates_text \
            or not kind.params.of(r.spec).outputs_text():
        return None
    # a serving request records what it asked for (lengths may vary per request)
    asked = [(s, int(s.readings.get("max_tokens", g.max_new_tokens))) for s in r.samples]
    bad = [(s.iteration, s.output_tokens, n) for s, n in asked if s.output_tokens != n]
    if bad:
        return CheckResult(name="exact_token_count", status="fail",
                           detail=f"expected the requested tokens; (iteration, tokens, requested): {bad[:5]}")
    varied = any("max_tokens" in s.readings for s in r.samples)
    return CheckResult(name="exact_token_count", status="pass",
                       detail=f"{len(r.samples)} calls, each with the tokens it asked for" if varied
                       else f"{len(r.samples)} calls x {g.max_new_tokens} tokens")


# a BOS token the tokenizer adds when the pipeline encodes, which the prompt's own count leaves out
INPUT_LENGTH_SLACK = 1


def input_length(r: CellResult) -> CheckResult | None:
    """Every call's input, as its pipeline counted it, is the synthetic prompt length the cell asks for (+-1): a
    figure keyed `in128` must be measured on 128 tokens of the model's own tokenizer."""
    asked = r.spec.prompts.input_tokens
    counted = [s.input_tokens for s in r.samples if s.input_tokens > 0]
    if not kind_spec(r.spec.scenario.kind).exact_input_length or r.spec.prompts.source != "synthetic" \
            or asked is None or not counted:
        return None
    off = sorted({n for n in counted if abs(n - asked) > INPUT_LENGTH_SLACK})
    if off:
        return CheckResult(name="input_length", status="fail",
                           detail=f"asked {asked} input tokens, the pipeline counted {min(counted)}-{max(counted)} "
                                  f"({len(off)} length(s) off by more than {INPUT_LENGTH_SLACK})")
    return CheckResult(name="input_length", status="pass",
                       detail=f"{len(counted)} calls of {min(counted)}-{max(counted)} tokens (asked {asked})")


def repeat_determinism(r: CellResult) -> CheckResult | None:
    """Greedy decoding (or seeded sampling) of the same prompt twice must give identical text."""
    if r.spec.generation.mode not in ("greedy", "sampling"):
        return None
    repeats = r.check_outputs.repeat_texts
    if not repeats:
        return None
    by_prompt = {s.prompt_index: s.output_text for s in _measured(r)}
    diffs = [p for p, text in repeats.items() if p in by_prompt and by_prompt[p] != text]
    compared = [p for p in repeats if p in by_prompt]
    if not compared:
        return CheckResult(name="repeat_determinism", status="not_run", detail="no measured sample to compare with")
    if diffs:
        return CheckResult(name="repeat_determinism", status="fail", detail=f"prompt(s) {diffs} gave different text on repeat")
    return CheckResult(name="repeat_determinism", status="pass", detail=f"prompt(s) {compared} identical on repeat")


def tokenizer_parity(r: CellResult) -> CheckResult | None:
    """OpenVINO Tokenizers must give the Hugging Face tokenizer's ids and text on the whole corpus."""
    found = r.check_outputs.tokenizer_parity
    if found is None:
        return None
    cut = f"; text(s) {sorted(found.truncated)} cut by the OpenVINO tokenizer to its max_length " \
        f"({', '.join(sorted({str(n) for n in found.truncated.values()}))} tokens; the ids it kept are identical)" \
        if found.truncated else ""
    if not found.encode_mismatches and not found.decode_mismatches:
        return CheckResult(name="tokenizer_parity", status="pass",
                           detail=f"{found.texts} texts: identical ids (with and without special tokens) and text{cut}")
    examples = [f"encode text {e.text} ({'with' if e.special_tokens else 'without'} special tokens) differs "
                f"at id {e.at}: {e.text_start!r}" for e in found.encode_examples]
    examples += [f"decode text {e.text}: OV {e.ov!r} vs HF {e.hf!r}" for e in found.decode_examples]
    failing = f"; OpenVINO tokenizer raised on text(s) {found.errors} (left out of the speed figures)" \
        if found.errors else ""
    return CheckResult(name="tokenizer_parity", status="fail",
                       detail=f"{found.encode_mismatches} encode and {found.decode_mismatches} decode mismatches "
                              f"over {found.texts} texts{failing}{cut}; " + "; ".join(examples))


def repeat_vectors(r: CellResult) -> CheckResult | None:
    """Embeddings and rerank scores of the first measured call must come back the same when repeated."""
    first, again = r.check_outputs.first_outputs, r.check_outputs.repeat_outputs
    common = [k for k in first if k in again]
    if not common:
        return None
    worst = max(float(np.max(np.abs(np.asarray(first[k], dtype=float) - np.asarray(again[k], dtype=float))))
                for k in common)
    limit = kind_spec(r.spec.scenario.kind).repeat_tolerance
    return CheckResult(name="repeat_determinism", status="pass" if worst <= limit else "fail",
                       detail=f"largest difference on repeat {worst:.2e} (limit {limit:g})")


def serving_errors(r: CellResult) -> CheckResult | None:
    """Every measured request of a serving cell must succeed; failures are counted by kind."""
    found = r.check_outputs.serving_errors
    if found is None:
        return None
    if not found.counts:
        return CheckResult(name="serving_errors", status="pass", detail="no failed request")
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(found.counts.items()))
    return CheckResult(name="serving_errors", status="fail", detail=f"{counts}; " + "; ".join(found.first))


def gate_checks(r: CellResult) -> list[CheckResult]:
    """One check per gate of the cell: the metric's summary statistic within the gate's limits."""
    out = []
    for g in r.spec.gates:
        s = r.summaries.get(g.metric)
        name = f"gate: {g.describe()}"
        if s is None:
            out.append(CheckResult(name=name, status="fail", detail=f"{g.metric} was not measured", gate=g))
            continue
        v = getattr(s, g.stat)
        ok = (g.min is None or v >= g.min) and (g.max is None or v <= g.max)
        out.append(CheckResult(name=name, status="pass" if ok else "fail", detail=f"{g.stat} {v:.4g}", gate=g))
    return out


def fidelity(r: CellResult) -> CheckResult | None:
    """With fidelity_check: the cell's TPOT and tok/s against the bare reference loop's. It fails only when
    the 95% interval of harness / reference lies wholly outside 1 ± tolerance, so noise alone does not fail
    it; an interval wider than the band passes and says it does not resolve the tolerance."""
    from harness.analyze.fidelity import pair_ratios, ratio_interval

    if not r.spec.fidelity_check:
        return None
    if not r.reference:
        return CheckResult(name="fidelity", status="not_run",
                           detail=r.reference_error or "the bare reference loop gave no calls")
    tol = r.spec.fidelity_tolerance
    low, high = 1 / (1 + tol), 1 + tol
    by_pair = pair_ratios(r.spec, r.samples, r.batches, r.reference)
    parts, outside, unresolved = [], [], []
    for c in by_pair:
        found = ratio_interval(r.spec, r.samples, r.batches, r.reference, c)
        if found is None:
            continue
        ratio, lo, hi = found
        parts.append(f"{c.metric} {ratio:.3f} ({lo:.3f}–{hi:.3f})")
        if c.judged:
            if hi < low or lo > high:
                outside.append(c.metric)
            elif lo < low or hi > high:
                unresolved.append(c.metric)
    if not parts:
        return CheckResult(name="fidelity", status="not_run", detail="no value to compare with the reference")
    pairs = max(len(v) for v in by_pair.values())
    detail = (f"harness / bare reference, {pairs} interleaved pair(s), 95% interval: " + ", ".join(parts)
              + f"; tolerance ±{tol:.0%}")
    if outside:
        return CheckResult(name="fidelity", status="fail", detail=f"{', '.join(outside)} outside the tolerance: {detail}")
    if unresolved:
        detail += f"; the interval of {', '.join(unresolved)} is wider than the tolerance (more processes narrow it)"
    return CheckResult(name="fidelity", status="pass", detail=detail)


def _token_pair(d: TokenDisagreement) -> str:
    ov = "stopped" if d.openvino is None else str(d.openvino)
    hf = "stop (max_new_tokens)" if d.transformers is None else str(d.transformers)
    apart = "" if d.gap is None else f", {d.gap:.3g} nats apart"
    return f"OpenVINO {ov}, transformers {hf}{apart}"


def matches_transformers(r: CellResult) -> CheckResult | None:
    """A plain greedy cell's f32 validation outputs must be transformers' own greedy decoding of the same prompt ids
    on the same (fp16-rounded) weights, up to float near-ties (harness/execute/transformers_reference.py)."""
    if not validation.transformers_scored(r.spec):
        return None
    found = r.check_outputs.transformers
    if found is None:
        return CheckResult(name="matches_transformers", status="not_run",
                           detail="no transformers reference was recorded for this cell")
    if found.error:
        return CheckResult(name="matches_transformers", status="not_run", detail=found.error)
    tol = r.spec.transformers_tolerance
    outs = r.check_outputs
    miscounted = [f"prompt {p}: the pipeline counted {outs.f32_input_tokens[p]} prompt tokens, its tokenizer gives "
                  f"{len(ids)} for the prompt" for p, ids in sorted(outs.f32_prompt_ids.items())
                  if p in found.tokens and p in outs.f32_input_tokens and outs.f32_input_tokens[p] != len(ids)]
    wrong, ties = [], []
    for p, found_at in sorted(found.disagreements.items()):
        bad = [d for d in found_at if d.gap is None or d.gap > tol]
        if bad:
            more = f" (and {len(bad) - 1} more position(s))" if len(bad) > 1 else ""
            wrong.append(f"prompt {p} at token {bad[0].position}: {_token_pair(bad[0])}{more}")
        ties += [f"prompt {p} at token {d.position} ({_token_pair(d)})" for d in found_at if d not in bad]
    scored = (f"{len(found.tokens)} f32 output(s), {sum(found.tokens.values())} tokens, against transformers' greedy "
              f"choices on {found.source} (f32, weights rounded to float16)")
    took = f"; {found.seconds:.1f} s" if found.seconds is not None else ""
    if found.reused_from:
        took += f"; transformers' result for these exact inputs, computed {found.reused_from}, reused"
    tied = f"; near-ties within {tol:g} nats: {', '.join(ties)}" if ties else ""
    if wrong or miscounted:
        return CheckResult(name="matches_transformers", status="fail",
                           detail="; ".join(miscounted + wrong) + f" — {scored}{tied}{took}")
    return CheckResult(name="matches_transformers", status="pass",
                       detail=f"{scored}: {'equal up to near-ties' if ties else 'equal'}{tied}{took}")


def cell_checks(r: CellResult) -> list[CheckResult]:
    if r.status != "ok":
        return []
    found = (exact_token_count(r), input_length(r), repeat_determinism(r), repeat_vectors(r), tokenizer_parity(r),
             serving_errors(r), fidelity(r), matches_transformers(r))
    return [c for c in found if c is not None] + gate_checks(r)


def _reference_signature(r: CellResult) -> tuple:
    return validation.greedy_signature(r.spec)


def first_divergence(a: list[int] | str, b: list[int] | str) -> int | None:
    """Index of the first differing token (or character), None when equal."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _divergences(mine: list[tuple[int, list[int] | str]],
                 ref: dict[int, list[int] | str]) -> tuple[int, list[tuple[int, int]]]:
    """How many outputs (prompt, output) have a reference, and (prompt, first differing position) of those that
    differ. Every output counts, so one wrong call among repeats of a prompt is not hidden by the others."""
    common = [(p, out) for p, out in mine if p in ref]
    diverged = [(p, at) for p, out in common if (at := first_divergence(out, ref[p])) is not None]
    return len(common), diverged


def _where(diverged: list[tuple[int, int]], unit: str) -> str:
    return ", ".join(f"prompt {p} at {unit} {at}" for p, at in sorted(set(diverged)))


def matches_greedy(r: CellResult, cells: list[CellResult]) -> CheckResult | None:
    """Speculative decoding, prompt lookup and continuous batching must not change greedy output: same tokens as the plain
    greedy cell of the same model, precision, device, prompts, generation settings and properties.

    Judged on the f32 validation outputs when both cells have them (harness/plan/validation.py: exactness is owed
    there); the timed outputs, at the cell's own inference precision, are then reported beside it but do not
    fail it, since bf16 rounding can flip near-ties. Without validation outputs the timed outputs are judged."""
    if not kind_spec(r.spec.scenario.kind).same_as_greedy or r.spec.generation.mode != "greedy" or r.status != "ok":
        return None
    comparable = kind_spec(r.spec.scenario.kind).greedy_comparable
    if comparable is not None and not comparable(r.spec):
        return None  # e.g. a serving cell's chat requests: not the greedy cell's prompts
    sig = _reference_signature(r)
    refs = [c for c in cells if kind_spec(c.spec.scenario.kind).greedy_reference and _reference_signature(c) == sig]
    if not refs:
        return CheckResult(name="matches_greedy", status="not_run",
                           detail="no plain greedy cell with the same model, precision, device and settings in this run")
    ref = refs[0]
    if ref.status != "ok":
        return CheckResult(name="matches_greedy", status="not_run", detail=f"reference cell {ref.key} is {ref.status}")
    # re-encoded ids (no streamer) are a canonical tokenization of the text, not what the model generated
    by_ids = all(s.output_ids and s.output_ids_source == "generated" for s in ref.samples + r.samples)
    unit = "token" if by_ids else "character"
    timed_n, timed_div = _divergences(
        [(s.prompt_index, s.output_ids if by_ids else s.output_text) for s in r.samples],
        {s.prompt_index: s.output_ids if by_ids else s.output_text for s in ref.samples})
    exact_n, exact_div = _divergences(list(r.check_outputs.f32_ids.items()), ref.check_outputs.f32_ids)  # type: ignore[arg-type]
    if exact_n:
        timed = (f"timed outputs at the cell's inference precision: {timed_n - len(timed_div)}/{timed_n} equal"
                 + (f" (near-tie rounding, not judged: {_where(timed_div, unit)})" if timed_div else ""))
        if exact_div:
            return CheckResult(name="matches_greedy", status="fail",
                               detail=f"at f32, {len(exact_div)}/{exact_n} outputs diverge from {ref.key}: "
                                      f"{_where(exact_div, 'token')}; {timed}")
        return CheckResult(name="matches_greedy", status="pass",
                           detail=f"at f32, {exact_n} outputs equal to {ref.key}; {timed}")
    if not timed_n:
        return CheckResult(name="matches_greedy", status="not_run", detail=f"no common prompts with {ref.key}")
    why = r.check_outputs.f32_error or ref.check_outputs.f32_error
    judged = f"timed outputs judged (no f32 validation outputs{': ' + why if why else ''})"
    if timed_div:
        return CheckResult(name="matches_greedy", status="fail",
                           detail=f"{len(timed_div)}/{timed_n} outputs diverge from {ref.key}: "
                                  f"{_where(timed_div, unit)}; {judged}")
    return CheckResult(name="matches_greedy", status="pass", detail=f"{timed_n} outputs equal to {ref.key}; {judged}")


def run_level_checks(cells: list[CellResult]) -> list[CellResult]:
    """Cells with cross-cell checks and figures added (recomputed from the data each time results are
    assembled): output equivalence with greedy, accuracy against fp16, and the gates on those figures."""
    from harness.analyze.accuracy import accuracy_vs_reference, judged_by_gates
    from harness.core.stats import summarize

    out = []
    for r in cells:
        checks = list(r.checks)
        extra = matches_greedy(r, cells)
        if extra is not None:
            checks = [c for c in checks if c.name != extra.name] + [extra]
        acc = accuracy_vs_reference(r, cells)
        if acc is not None:
            values, check = acc
            unknown = unknown_tags(values)
            if unknown:  # the same rule as for a worker's values
                raise ValueError(f"accuracy values must be metric tags of the registry; unknown: {', '.join(unknown)}")
            r = r.model_copy(update={"cell_values": {**r.cell_values, **values},
                                     "summaries": {**r.summaries, **{k: summarize([v]) for k, v in values.items()}}})
            gates = gate_checks(r)
            checks = [c for c in checks if c.gate is None and c.name != check.name]
            checks += gates + [judged_by_gates(check, gates) if values else check]
        out.append(r.model_copy(update={"checks": checks}))
    return out
