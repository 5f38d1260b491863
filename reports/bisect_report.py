"""Renderers of a bisect record (harness/experiment/bisect.py's BisectRecord): its verdict lines and Markdown."""

from __future__ import annotations

from harness.core.escaping import md_code, md_text
from harness.experiment.bisect import BisectRecord, Evidence, Step
from reports.ab_report import ratio_interval, ratio_pct


def evidence_text(e: Evidence) -> str:
    return (f"{ratio_pct(e.ratio)} {ratio_interval(e.ci_low, e.ci_high)} ({e.good_median:.4g} → {e.candidate_median:.4g} "
            f"{e.unit}), {e.verdict} after {e.rounds} rounds, A/B {e.ab_id}")


def _last_step(record: BisectRecord, name: str) -> Step | None:
    return next((s for s in reversed(record.steps) if s.candidate == name), None)


def summary_lines(record: BisectRecord) -> list[str]:
    """What the bisect concluded, with the evidence for the first bad candidate and its good neighbour."""
    names = [c.name for c in record.candidates]
    tail = f"{len(record.steps)} steps, {record.minutes():.1f} min of measuring"
    if record.status == "found" and record.first_bad:
        i = names.index(record.first_bad)
        bad = _last_step(record, record.first_bad)
        lines = [f"first bad: {record.first_bad} ({tail})",
                 f"  {record.first_bad}: " + (bad.reason if bad else "given as the bad end, not measured "
                                                                        "(--no-check-ends)")]
        prev = names[i - 1]
        before = _last_step(record, prev)
        lines.append(f"  {prev} (the one before): " + (before.reason if before else "the good end: every step's base"))
        return lines
    if record.status == "range":
        return [f"the first bad is one of: {', '.join(record.range)} (the others were skipped; {tail})"]
    if record.status == "no-regression":
        step = _last_step(record, names[-1])
        return [f"no regression: the bad end {names[-1]} is not worse than {names[0]}: "
                f"{step.reason if step else ''} ({tail})"]
    if record.status == "bad-end-unmeasured":
        step = _last_step(record, names[-1])
        return [f"cannot bisect: the bad end {names[-1]} could not be measured: {step.reason if step else ''} ({tail})"]
    return [f"bisect not finished ({tail})"]


def render_bisect_md(record: BisectRecord) -> str:
    lines = [f"# Bisect {md_text(record.bisect_id)}", "",
             f"Suite {md_code(record.suite_name)}, cell {md_code(record.cell_key)}, metric {md_code(record.metric)}; "
             f"{len(record.candidates)} candidates from {md_code(record.candidates[0].name)} (good) to "
             f"{md_code(record.candidates[-1].name)} (bad). Status: **{record.status}**.", ""]
    lines += [md_text(x) for x in summary_lines(record)] + ["", "| step | candidate | mark | evidence (vs the good end) | "
                                                            "minutes |", "|---|---|---|---|---|"]
    for s in record.steps:
        lines.append(f"| {s.step} | {md_text(s.candidate)} | {s.mark} | {md_text(s.reason)} | {s.minutes:.1f} |")
    lines += ["", "Candidates in order: " + ", ".join(f"{md_code(c.name)}" for c in record.candidates)]
    return "\n".join(lines) + "\n"
