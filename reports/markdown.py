"""Compact Markdown report: run header, one row per cell with every parameter, failures, checks."""

from __future__ import annotations

from harness.analyze.roofline import exceeds_host
from harness.core.escaping import md_code, md_text
from harness.core.schema import CellResult, RunResults
from harness.kinds import kind_spec
from reports.goodput import sweep_limits
from reports.host_states import BUSY_MARK, busy_warnings
from reports.host_states import markdown_lines as host_state_lines
from reports.load_report import markdown_lines as load_markdown_lines
from reports.precision_table import precision_groups
from reports.quality_table import quality_lines
from reports.repeated_loads import repeated_loads
from reports.rows import (
    by_kind,
    cell_row,
    column_text,
    fmt_value,
    runs_locally,
    server_rows,
)
from reports.verdicts import bandwidth_provenance


def _header(res: RunResults) -> list[str]:
    m = res.metadata
    v = m.versions
    devs = "; ".join(f"{md_text(d.name)}: {md_text(d.full_name or '?')}" for d in m.devices) or "none"
    return [
        f"# Run {md_code(m.run_id)} — suite {md_code(m.suite_name)}",
        "",
        f"- {'submitted from' if m.cluster else 'host'}: {md_text(m.host.cpu_model or '?')}, {m.host.logical_cores} logical cores, "
        f"{m.host.memory_total_mb / 1024:.1f} GiB RAM, {md_text(m.host.os)}",
        f"- devices: {devs}",
        *([f"- Ray cluster {md_code(m.cluster.address)} ({m.cluster.mode}); cells ran on: "
           + "; ".join(f"{md_text(n.name)} ({md_text(n.host.cpu_model or '?')}, {n.host.logical_cores} cores, "
                       f"{', '.join(md_text(d.name) for d in n.devices)})" for n in m.cluster.nodes)]
          if m.cluster else []),
        md_text(f"- openvino {v.get('openvino')}, openvino-genai {v.get('openvino-genai')}, optimum-intel "
                f"{v.get('optimum-intel')}, nncf {v.get('nncf')}, transformers {v.get('transformers')}; harness "
                f"{v.get('ov-genai-harness')} ({m.harness_commit or 'no git commit'})"),
        *([f"- memory bandwidth: triad {bw.triad_gbs:.1f} GB/s{md_text(bandwidth_provenance(bw))}"]
          if (bw := m.host.memory_bandwidth) is not None else []),
        md_text(f"- started {m.started_at}, finished {m.finished_at or 'not finished'}"
                + (f", resumed {', '.join(m.resumed_at)}" if m.resumed_at else "")),
        *([f"- the suite as run differs from its file by: {', '.join(md_code(o) for o in m.overrides)}"]
          if m.overrides else []),
        *dropped_gate_lines(res),
        "",
    ]


def roofline_lines(cells: list[CellResult]) -> list[str]:
    """Why a plain decoding cell shows no roofline %: its decode outran the host's measured bandwidth."""
    over = [c for c in cells if exceeds_host(c.cell_values)]
    if not over:
        return []
    return ["", f"Roofline % left out for {len(over)} cell(s) ({', '.join(md_code(c.key) for c in over[:3])}"
            + (", ..." if len(over) > 3 else "") + "): their decode read weights faster than the host's measured "
            "triad bandwidth, either from the CPU's cache (weights smaller than it) or because that figure was "
            "measured under load; each cell's note says which (docs/roofline.md).", ""]


def dropped_gate_lines(res: RunResults) -> list[str]:
    """The suite's gates that the overrides left without a cell, each with the override(s) that did it."""
    return [f"- gate dropped, not checked: gates[{d.index}] {md_code(d.gate.describe())} where "
            f"{md_code(d.where_text())}: no cell left by {d.removed_by(md_code)}" for d in res.metadata.dropped_gates]


def sweep_limit_lines(cells: list[CellResult]) -> list[str]:
    """The highest concurrency (or rate) of each gated load sweep that met its gates."""
    limits = sweep_limits(cells)
    if not limits:
        return []
    lines = ["", "Highest concurrency or request rate within the suite's gates (SLOs):", ""]
    for lim in limits:
        verdict = f"**{lim.axis} {lim.max_within}**" if lim.max_within is not None else "**none** of the tried"
        tail = (f"; {lim.axis} {lim.first_failing} missed {', '.join(lim.failed_gates)}"
                if lim.first_failing is not None else f"; every tried {lim.axis} met them")
        lines.append(f"- {md_code(lim.sweep)}: {verdict} (tried {', '.join(map(str, lim.tried))}; "
                     f"gates {', '.join(lim.gates)}){tail}")
    return lines


def scenario_table(kind: str, cells: list[CellResult]) -> list[str]:
    """One table for the cells of one scenario kind, with the columns that fit it."""
    table = kind_spec(kind).report
    cols = table.columns
    lines = [f"### {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    lines += ["| model | precision | device | scenario | params | in/out tokens | "
              + " | ".join(c.header for c in cols) + " | checks | status |",
              "|" + "---|" * (len(cols) + 8)]
    for c in cells:
        r = cell_row(c)
        inout = f"{fmt_value(r.input_tokens, 0)}/{fmt_value(r.output_tokens, 0)}"
        status = f"{r.status} {BUSY_MARK}" if busy_warnings(c) else r.status
        checks = ", ".join(f"{md_text(k)}: {v}" for k, v in r.checks.items()) or "—"
        lines.append(f"| {md_text(r.model)} | {md_text(r.precision)} | {md_text(r.device)} | {md_text(r.scenario)} "
                     f"| {md_text(r.params) or '—'} | {inout} | "
                     + " | ".join(column_text(col, r.summaries) for col in cols) + f" | {checks} | {status} |")
    return lines + [""]


def precision_lines(cells: list[CellResult]) -> list[str]:
    """Per model: the precisions side by side, with speed-up and compression against fp16."""
    groups = precision_groups(cells)
    if not groups:
        return []
    lines = ["", "### Precisions side by side", "",
             "Medians. Speed-up = how much faster than fp16 on the scenario's speed figure (named in the column's "
             "header); compression = fp16 size on disk / size; "
             "accuracy columns compare with the fp16 cell on the same inputs (— where not measured).", ""]
    for g in groups:
        lines += [f"**{md_text(g.title)}**", "", "| precision | " + " | ".join(g.headers)
                  + f" | speed-up ({g.speedup_on}) | compression |",
                  "|" + "---|" * (len(g.headers) + 3)]
        for r in g.rows:
            lines.append(f"| {r.precision} | " + " | ".join(r.cells)
                         + f" | {fmt_value(r.speedup, 2)}{'×' if r.speedup else ''}"
                         f" | {fmt_value(r.compression, 2)}{'×' if r.compression else ''} |")
        lines.append("")
    return lines


def fidelity_lines(cells: list[CellResult]) -> list[str]:
    """The cells with a fidelity check: their readings beside the bare reference loop's."""
    checked = [c for c in cells if c.status == "ok" and c.spec.fidelity_check]
    if not checked:
        return []
    lines = ["", "### Fidelity: harness against a bare openvino-genai loop", "",
             "Each worker process is paired with the bare reference loop (harness/execute/reference.py) in a fresh process "
             "on the same IR, prompts and settings; ratio = harness / reference, geometric mean over the pairs "
             "(1.00: the harness reads what a bare script reads; continuous batching compares whole-batch tok/s).",
             "", "| cell | TPOT ms | ref TPOT ms | TPOT ratio | tok/s | ref tok/s | tok/s ratio | TTFT ratio | check |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in checked:
        v, s = c.cell_values, c.summaries
        tps = s.get(kind_spec(c.spec.scenario.kind).throughput_metric)
        check = next((ch for ch in c.checks if ch.name == "fidelity"), None)
        lines.append(f"| {md_code(c.key)} | {fmt_value(s['tpot_ms'].median if 'tpot_ms' in s else None, 2)} "
                     f"| {fmt_value(v.get('reference_tpot_ms'), 2)} | {fmt_value(v.get('fidelity_tpot_ratio'), 3)} "
                     f"| {fmt_value(tps.median if tps else None, 1)} | {fmt_value(v.get('reference_output_tps'), 1)} "
                     f"| {fmt_value(v.get('fidelity_tps_ratio'), 3)} | {fmt_value(v.get('fidelity_ttft_ratio'), 3)} "
                     f"| {check.status if check else '—'} |")
    return lines


def reference_side_lines(cells: list[CellResult]) -> list[str]:
    """The cells measured beside the suite's reference side: each metric's ratio to it, with its interval."""
    found = [c for c in cells if c.vs_reference is not None and c.vs_reference.ratios]
    if not found:
        return []
    lines = ["", "### Against the reference side", "",
             "Each cell was measured interleaved with the suite's pinned reference side in the same run, call by call "
             "in pairs of worker processes: ratio = cell / reference, the geometric mean of the paired calls' ratios "
             "[95% interval, counting the process pairs' own offsets where there are two or more]. The machine's "
             "drift moves both sides alike and cancels in the ratio.", "",
             "| cell | reference | metric | ratio [95% CI] | better | call pairs / process pairs | reference median |",
             "|---|---|---|---|---|---|---|"]
    for c in found:
        vs = c.vs_reference
        assert vs is not None
        for f in vs.ratios:
            own = vs.summaries.get(f.metric)
            lines.append(f"| {md_code(c.key)} | {md_text(vs.label)} ({md_text(vs.description)}) | {md_text(f.metric)} "
                         f"| {fmt_value(f.ratio, 3)} [{fmt_value(f.ci_low, 3)}, {fmt_value(f.ci_high, 3)}] "
                         f"| {'higher' if f.higher_is_better else 'lower'} | {f.call_pairs} / {f.process_pairs} "
                         f"| {fmt_value(own.median if own else None, 2)} |")
    return lines


def transformers_lines(cells: list[CellResult]) -> list[str]:
    """The plain greedy cells judged against transformers' greedy decoding, with what each check found."""
    found = [(c, ch) for c in cells for ch in c.checks if ch.name == "matches_transformers"]
    if not found:
        return []
    lines = ["", "### Plain greedy against transformers", "",
             "The f32 validation outputs of each plain greedy cell, scored by transformers (PyTorch, f32) on the "
             "model's Hugging Face weights rounded to float16, fed the same prompt ids (check matches_transformers; "
             "docs/metrics.md).", "", "| cell | check | detail |", "|---|---|---|"]
    lines += [f"| {md_code(c.key)} | {ch.status} | {md_text(ch.detail)} |" for c, ch in found]
    return lines


def repeated_load_lines(cells: list[CellResult]) -> list[str]:
    groups = [(c, repeated_loads(c)) for c in cells if c.status == "ok"]
    groups = [(c, figs) for c, figs in groups if figs]
    if not groups:
        return []
    lines = ["", "### Repeated loads", "", "Serving cells run as several loads (`processes`): mean of the loads' "
             "figures [Student-t 95% CI of the mean], then each load's figure.", "",
             "| cell | figure | loads | mean [95% CI] | per load |", "|---|---|---|---|---|"]
    for c, figs in groups:
        for f in figs:
            lines.append(f"| {md_code(c.key)} | {f.label} | {len(f.per_load)} | {fmt_value(f.mean, 2)} "
                         f"[{fmt_value(f.low, 2)}, {fmt_value(f.high, 2)}] | "
                         + ", ".join(fmt_value(v, 2) for v in f.per_load) + " |")
    return lines


def slo_search_lines(cells: list[CellResult]) -> list[str]:
    found = [c for c in cells if c.slo_search is not None]
    if not found:
        return []
    lines = ["", "### SLO search", "", "Highest open-loop rate whose load met the SLO (bisection on the rate); "
             "the cell's other figures are that load's.", "",
             "| cell | SLO | must meet | highest rate within | lowest rate failing | loads: rate req/s → met % |",
             "|---|---|---|---|---|---|"]
    for c in found:
        s = c.slo_search
        assert s is not None
        limits = ", ".join(f"{k} ≤ {v:g}" for k, v in s.limits.items())
        probes = "; ".join(f"{p.rate_rps:.2f} → {p.attainment_pct:.0f}% {'✓' if p.passed else '✗'}" for p in s.probes)
        lines.append(f"| {md_code(c.key)} | {md_text(limits)} | {s.target_pct:g}% | "
                     f"{fmt_value(s.max_rate_rps, 2) if s.max_rate_rps is not None else 'none passed'} | "
                     f"{fmt_value(s.first_failing_rps, 2) if s.first_failing_rps is not None else 'none failed'} | "
                     f"{probes} |")
    return lines


def server_lines(cells: list[CellResult]) -> list[str]:
    rows = server_rows(cells)
    if not rows:
        return []
    lines = ["", "### Servers under load", "", "What each server said about itself (— : it said nothing).", "",
             "| cell | endpoint | served model | server (GET /v2) | HTTP server header | model versions | "
             "prompt tokens counted by |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {md_code(r.key)} | {md_text(r.endpoint)} | {md_text(r.served_model)} | {md_text(r.server)} "
              f"| {md_text(r.header)} | {md_text(r.model_versions)} | {md_text(r.tokenizer)} |" for r in rows]
    return lines


def preparation_lines(cells: list[CellResult]) -> list[str]:
    """What preparing each model at each precision decided (the file read, the int4 group size used), once."""
    seen: dict[tuple[str, str], list[str]] = {}
    for c in cells:
        if c.preparation:
            seen.setdefault((c.spec.model.name, c.spec.precision), [])
            for note in c.preparation:
                if note not in seen[(c.spec.model.name, c.spec.precision)]:
                    seen[(c.spec.model.name, c.spec.precision)].append(note)
    if not seen:
        return []
    return ["", "### Model preparation", ""] + [f"- {md_text(model)} {precision}: {md_text('; '.join(notes))}"
                                                for (model, precision), notes in seen.items()]


def render_markdown(res: RunResults) -> str:
    """The Markdown report of a run."""
    lines = _header(res)
    lines += [
        "Values are median ± sample standard deviation over the measured iterations (warm-up excluded). "
        "TTFT and TPOT are on the harness clock: TPOT = (e2e − TTFT) / (output tokens − 1); "
        "tok/s = output tokens / e2e; tok/step = mean tokens per streamed step (> 1 when drafts are accepted). "
        "Definitions: docs/metrics.md.",
        "",
    ]
    for kind, cells in by_kind(res.cells).items():
        lines += scenario_table(kind, cells)
    lines += roofline_lines(res.cells)
    lines += host_state_lines(res)
    lines += sweep_limit_lines(res.cells)
    lines += load_markdown_lines(res)
    lines += precision_lines(res.cells)
    lines += quality_lines(res.cells)
    local = [c for c in res.cells if c.status == "ok" and runs_locally(c)]
    if local:  # a run against remote servers only loads nothing here
        lines += ["", "### Load, memory and size", "",
                  "| cell | load cold ms | load cached ms | model memory MB | peak RSS MB | IR size MB | export s |",
                  "|---|---|---|---|---|---|---|"]
    for c in local:
        v = c.cell_values
        lines.append(f"| {md_code(c.key)} | {fmt_value(v.get('load_cold_ms'), 0)} | {fmt_value(v.get('load_cached_ms'), 0)} "
                     f"| {fmt_value(v.get('model_memory_mb'), 0)} | {fmt_value(v.get('peak_rss_mb'), 0)} "
                     f"| {fmt_value(v.get('model_size_mb'), 1)} | {fmt_value(v.get('export_s'), 1)} |")
    lines += preparation_lines(res.cells)
    lines += reference_side_lines(res.cells)
    lines += fidelity_lines(res.cells)
    lines += transformers_lines(res.cells)
    lines += slo_search_lines(res.cells)
    lines += repeated_load_lines(res.cells)
    lines += server_lines(res.cells)
    rows = [cell_row(c) for c in res.cells]
    problems = [r for r in rows if r.status not in ("ok",)]
    if problems:
        lines += ["", "## Cells not measured", ""]
        lines += [f"- {md_code(r.key)}: **{r.status}** — {md_text(r.error or 'no error recorded')}" for r in problems]
    failed_checks = [(c.key, ch) for c in res.cells for ch in c.checks if ch.status == "fail"]
    if failed_checks:
        lines += ["", "## Failed checks", ""]
        lines += [f"- {md_code(key)}: {md_text(ch.name)} — {md_text(ch.detail)}" for key, ch in failed_checks]
    n_ok = sum(r.status == "ok" for r in rows)
    lines += ["", f"{n_ok}/{len(rows)} cells ok; {len(failed_checks)} failed checks.", ""]
    return "\n".join(lines)
