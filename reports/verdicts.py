"""Qualification and release reports: gate verdicts per device, and a models × precisions × devices table."""

from __future__ import annotations

from collections import defaultdict

from harness.kinds import kind_spec
from harness.schema import CellResult, RunResults
from reports.rows import column_text


def _gates(c: CellResult):
    return [ch for ch in c.checks if ch.gate is not None]


def _cell_passes(c: CellResult) -> bool:
    # a check that could not be judged (not_run: e.g. figures recorded without a gate) does not fail a cell
    return c.status == "ok" and not any(ch.status == "fail" for ch in c.checks)


ROOFLINE_HEADERS = ("decode tok/s", "weight MB/token", "achieved GB/s", "roofline %")


def _roofline_columns(c: CellResult) -> list[str]:
    """Decode tok/s (1000 / mean TPOT, the rate the roofline uses), weight MB read per token, the bandwidth that
    reaches and its share of the host's measured bandwidth (harness/roofline.py); — where a figure is absent."""
    def fmt(value: float | None, digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    def median(tag: str) -> float | None:
        found = c.summaries.get(tag)
        return None if found is None else found.median

    tpot = c.summaries.get("tpot_ms")
    decode = 1000.0 / tpot.mean if tpot is not None and tpot.mean > 0 else None
    return [fmt(decode, 1), fmt(median("weight_bytes_per_token"), 1), fmt(median("achieved_bandwidth_gbs"), 1),
            fmt(median("roofline_pct"), 0)]


def _bandwidth_text(res: RunResults) -> str:
    bw = res.metadata.host.memory_bandwidth
    if bw is None:
        return "memory bandwidth not measured"
    return (f"memory bandwidth {bw.triad_gbs:.1f} GB/s triad (median {bw.triad_median_gbs:.1f}), "
            f"{bw.copy_gbs:.1f} GB/s copy, {bw.threads} threads")


def render_qualification(res: RunResults) -> str:
    """One verdict per device: PASS when every cell on it ran and met every gate and check."""
    by_device: dict[str, list[CellResult]] = defaultdict(list)
    for c in res.cells:
        by_device[c.spec.device].append(c)
    m = res.metadata
    lines = [f"# Qualification — suite `{m.suite_name}`, run `{m.run_id}`", "",
             f"Host: {m.host.cpu_model}, {m.host.logical_cores} logical cores, {_bandwidth_text(res)}; "
             f"openvino-genai {m.versions.get('openvino-genai')}.", ""]
    for device, cells in by_device.items():
        full = next((d.full_name for d in m.devices if d.name == device), None)
        skipped = [c for c in cells if c.status == "skipped"]
        if len(skipped) == len(cells):
            verdict = "NOT RUN"
        else:
            verdict = "PASS" if all(_cell_passes(c) for c in cells if c.status != "skipped") else "FAIL"
        lines += [f"## {device}{f' ({full})' if full else ''}: **{verdict}**", ""]
        if skipped and len(skipped) == len(cells):
            lines += [f"- {skipped[0].error}", ""]
            continue
        lines += ["| cell | status | gates | failed | " + " | ".join(ROOFLINE_HEADERS) + " |",
                  "|---|---|---|---|" + "---|" * len(ROOFLINE_HEADERS)]
        for c in cells:
            gates = _gates(c)
            failed = [f"{ch.gate.describe() if ch.gate else ch.name} ({ch.detail})" for ch in c.checks
                      if ch.status == "fail"]
            if c.status not in ("ok", "skipped"):
                failed.append(c.error or c.status)
            lines.append(f"| `{c.key}` | {c.status} | {sum(g.status == 'pass' for g in gates)}/{len(gates)} "
                         f"| {'; '.join(failed) or '—'} | " + " | ".join(_roofline_columns(c)) + " |")
        lines.append("")
    return "\n".join(lines)


def render_release(res: RunResults) -> str:
    """Release table: one row per model × precision × scenario, one column per device (tok/s, TTFT, verdict)."""
    devices = sorted({c.spec.device for c in res.cells})
    rows: dict[tuple[str, str, str], dict[str, CellResult]] = defaultdict(dict)
    for c in res.cells:
        params = ",".join(f"{k}={v}" for k, v in sorted(c.spec.scenario.params.items()))
        rows[(c.spec.model.name, c.spec.precision, c.spec.scenario.name + (f"[{params}]" if params else ""))][
            c.spec.device] = c
    lines = [f"# Release report — suite `{res.metadata.suite_name}`, run `{res.metadata.run_id}`", "",
             "Each device cell: the scenario's two headline figures (text generation: output tok/s and TTFT; "
             "continuous batching: total tok/s and TTFT p90; embeddings/rerank: documents/s and latency; "
             "tokenizer: OpenVINO encode tok/s and mismatches) and the verdict (all gates and checks).", "",
             "| model | precision | scenario | " + " | ".join(devices) + " |",
             "|---|---|---|" + "---|" * len(devices)]
    for (model, precision, scenario), per_dev in sorted(rows.items()):
        cols: list[str] = []
        for d in devices:
            found = per_dev.get(d)
            if found is None:
                cols.append("—")
                continue
            c = found
            if c.status != "ok":
                cols.append(c.status)
            else:
                verdict = "pass" if _cell_passes(c) else "**FAIL**"
                first, second = kind_spec(c.spec.scenario.kind).report.headline
                cols.append(f"{column_text(first, c.summaries)} {first.header} · {column_text(second, c.summaries)} "
                            f"{second.header}"
                            f" · {verdict}")
        lines.append(f"| {model} | {precision} | {scenario} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"
