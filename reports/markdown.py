"""Compact Markdown report: run header, one row per cell with every parameter, failures, checks."""

from __future__ import annotations

from harness.schema import RunResults
from reports.rows import cell_row, fmt_spread, fmt_value


def _header(res: RunResults) -> list[str]:
    m = res.metadata
    v = m.versions
    devs = "; ".join(f"{d.name}: {d.full_name or '?'}" for d in m.devices) or "none"
    return [
        f"# Run `{m.run_id}` — suite `{m.suite_name}`",
        "",
        f"- host: {m.host.cpu_model or '?'}, {m.host.logical_cores} logical cores, "
        f"{m.host.memory_total_mb / 1024:.1f} GiB RAM, {m.host.os}",
        f"- devices: {devs}",
        f"- openvino {v.get('openvino')}, openvino-genai {v.get('openvino-genai')}, optimum-intel "
        f"{v.get('optimum-intel')}, nncf {v.get('nncf')}, transformers {v.get('transformers')}; harness "
        f"{v.get('ov-genai-harness')} ({m.harness_commit or 'no git commit'})",
        f"- started {m.started_at}, finished {m.finished_at or 'not finished'}"
        + (f", resumed {', '.join(m.resumed_at)}" if m.resumed_at else ""),
        "",
    ]


def _mean(s):
    return None if s is None else s.mean


def render_markdown(res: RunResults) -> str:
    """The Markdown report of a run."""
    rows = [cell_row(c) for c in res.cells]
    lines = _header(res)
    lines += [
        "Values are median ± sample standard deviation over the measured iterations (warm-up excluded). "
        "TTFT and TPOT are on the harness clock: TPOT = (e2e − TTFT) / (output tokens − 1); "
        "tok/s = output tokens / e2e; tok/step = mean tokens per streamed step (> 1 when drafts are accepted). "
        "Definitions: docs/metrics.md.",
        "",
        "| model | precision | device | scenario | params | in/out tokens | TTFT ms | TPOT ms | tok/s "
        "| peak MB | accept % | tok/step | checks | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r.summaries
        inout = f"{fmt_value(r.input_tokens, 0)}/{fmt_value(r.output_tokens, 0)}"
        checks = ", ".join(f"{k}: {v}" for k, v in r.checks.items()) or "—"
        lines.append(
            f"| {r.model} | {r.precision} | {r.device} | {r.scenario} | {r.params or '—'} | {inout} "
            f"| {fmt_spread(s.get('ttft_ms'), 2)} | {fmt_spread(s.get('tpot_ms'), 2)} "
            f"| {fmt_spread(s.get('output_tps'), 1)} | {fmt_spread(s.get('peak_rss_mb'), 0)} "
            f"| {fmt_spread(s.get('acceptance_rate_pct'), 1)} | {fmt_value(_mean(s.get('tokens_per_chunk')), 2)} "
            f"| {checks} | {r.status} |"
        )
    lines += ["", "### Load, memory and size", "",
              "| cell | load cold ms | load cached ms | model memory MB | peak RSS MB | IR size MB | export s |",
              "|---|---|---|---|---|---|---|"]
    for c in res.cells:
        if c.status != "ok":
            continue
        v = c.cell_values
        lines.append(f"| `{c.key}` | {fmt_value(v.get('load_cold_ms'), 0)} | {fmt_value(v.get('load_cached_ms'), 0)} "
                     f"| {fmt_value(v.get('model_memory_mb'), 0)} | {fmt_value(v.get('peak_rss_mb'), 0)} "
                     f"| {fmt_value(v.get('model_size_mb'), 1)} | {fmt_value(v.get('export_s'), 1)} |")
    problems = [r for r in rows if r.status not in ("ok",)]
    if problems:
        lines += ["", "## Cells not measured", ""]
        lines += [f"- `{r.key}`: **{r.status}** — {r.error or 'no error recorded'}" for r in problems]
    failed_checks = [(c.key, ch) for c in res.cells for ch in c.checks if ch.status == "fail"]
    if failed_checks:
        lines += ["", "## Failed checks", ""]
        lines += [f"- `{key}`: {ch.name} — {ch.detail}" for key, ch in failed_checks]
    n_ok = sum(r.status == "ok" for r in rows)
    lines += ["", f"{n_ok}/{len(rows)} cells ok; {len(failed_checks)} failed checks.", ""]
    return "\n".join(lines)
