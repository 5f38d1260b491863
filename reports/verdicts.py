"""Qualification and release reports: gate verdicts per host and device, and a models × precisions × devices table."""

from __future__ import annotations

from collections import defaultdict

from harness.analyze.roofline import decode_tokens_per_s, exceeds_host, figure_busy, under_load
from harness.core.escaping import md_code, md_text
from harness.core.metrics import TPOT, AchievedBandwidth, RooflinePercent, WeightBytesPerToken
from harness.core.schema import FAILED_STATUSES, CellResult, DeviceInfo, HostInfo, MemoryBandwidth, RunResults
from harness.kinds import kind_spec
from reports.rows import column_text


def _gates(c: CellResult):
    return [ch for ch in c.checks if ch.gate is not None]


def _cell_passes(c: CellResult) -> bool:
    # a check that could not be judged (not_run: e.g. figures recorded without a gate) does not fail a cell
    return c.status == "ok" and not any(ch.status == "fail" for ch in c.checks)


def _host_line(name: str | None, host: HostInfo, devices: list[DeviceInfo], versions: dict[str, str | None]) -> str:
    who = f"Node {md_text(name)}: " if name else "Host: "
    return (f"{who}{md_text(host.cpu_model)}, {host.logical_cores} logical cores, {host.memory_total_mb / 1024:.0f} GiB, "
            f"{md_text(_bandwidth_text(host))}; devices {', '.join(md_text(d.name) for d in devices) or 'none'}; "
            f"openvino-genai {md_text(versions.get('openvino-genai'))}.")


ROOFLINE_HEADERS = ("decode tok/s", "weight MB/token", "achieved GB/s", "roofline %")


def _roofline_columns(c: CellResult) -> list[str]:
    """Decode tok/s (1000 / mean TPOT, the rate the roofline uses), weight MB read per token, the bandwidth that
    reaches and its share of the host's measured bandwidth (harness/analyze/roofline.py); — where a figure is absent."""
    def fmt(value: float | None, digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    def median(tag: str) -> float | None:
        found = c.summaries.get(tag)
        return None if found is None else found.median

    tpot = c.summaries.get(TPOT.tag)
    decode = decode_tokens_per_s(tpot.mean) if tpot is not None else None
    roofline = "> 100: weights in cache or bandwidth measured under load (cell note)" \
        if exceeds_host(c.cell_values) else fmt(median(RooflinePercent.tag), 0)
    return [fmt(decode, 1), fmt(median(WeightBytesPerToken.tag), 1), fmt(median(AchievedBandwidth.tag), 1),
            roofline]


def _bandwidth_text(host: HostInfo) -> str:
    bw = host.memory_bandwidth
    if bw is None:
        return "memory bandwidth not measured"
    return (f"memory bandwidth {bw.triad_gbs:.1f} GB/s triad (median {bw.triad_median_gbs:.1f}), "
            + (f"{bw.copy_gbs:.1f} GB/s copy, " if bw.copy_gbs else "") + f"{bw.threads} threads"
            + bandwidth_provenance(bw))


def bandwidth_provenance(bw: MemoryBandwidth) -> str:
    """Where a run's bandwidth figure came from: measured by the run, or the best of the host's earlier
    measurements (when), and what the run's own reading said."""
    busy = "; taken on a busy host, as every reading of it so far: likely low" if figure_busy(bw) else ""
    if not bw.cached:
        return f" (measured by this run at {bw.measured_at}{busy})"
    text = f" (best of {bw.measurements} measurements of this host, from {bw.measured_at}{busy}"
    if bw.this_run is not None:
        text += f"; this run read {bw.this_run.triad_gbs:.1f}" + (": host under load" if under_load(bw) else "")
    return text + ")"


def render_qualification(res: RunResults) -> str:
    """One verdict per host and device: PASS when every cell there ran and met every gate and check. A cluster
    run has a section per node (its cells ran there); a local run one host."""
    m = res.metadata
    nodes = {n.name: n for n in m.cluster.nodes} if m.cluster else {}
    by_place: dict[tuple[str | None, str], list[CellResult]] = defaultdict(list)
    for c in res.cells:
        by_place[(c.node.name if c.node else None, c.spec.device)].append(c)
    lines = [f"# Qualification — suite {md_code(m.suite_name)}, run {md_code(m.run_id)}", ""]
    if m.cluster is None:
        lines += [_host_line(None, m.host, m.devices, m.versions), ""]
    else:
        lines += [f"Ray cluster {md_code(m.cluster.address)}, {m.cluster.mode}: {len(m.cluster.nodes)} node(s)."
                  + (" Left out: " + "; ".join(f"{md_text(k)} ({md_text(v)})" for k, v in m.cluster.left_out.items())
                     + "."
                     if m.cluster.left_out else ""), ""]
        lines += ["- " + _host_line(n.name, n.host, n.devices, n.versions) for n in m.cluster.nodes] + [""]
    for (node, device), cells in sorted(by_place.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
        devices = nodes[node].devices if node in nodes else m.devices
        full = next((d.full_name for d in devices if d.name == device), None)
        skipped = [c for c in cells if c.status == "skipped"]
        if len(skipped) == len(cells):
            verdict = "NOT RUN"
        else:
            verdict = "PASS" if all(_cell_passes(c) for c in cells if c.status != "skipped") else "FAIL"
        where = f"{node} · {device}" if node else device
        lines += [f"## {md_text(where)}{f' ({md_text(full)})' if full else ''}: **{verdict}**", ""]
        if skipped and len(skipped) == len(cells):
            lines += [f"- {md_text(skipped[0].error)}", ""]
            continue
        lines += ["| cell | status | gates | failed | " + " | ".join(ROOFLINE_HEADERS) + " |",
                  "|---|---|---|---|" + "---|" * len(ROOFLINE_HEADERS)]
        for c in cells:
            gates = _gates(c)
            failed = [f"{ch.gate.describe() if ch.gate else ch.name} ({ch.detail})" for ch in c.checks
                      if ch.status == "fail"]
            if c.status in FAILED_STATUSES:
                failed.append(c.error or c.status)
            lines.append(f"| {md_code(c.key)} | {c.status} | {sum(g.status == 'pass' for g in gates)}/{len(gates)} "
                         f"| {md_text('; '.join(failed)) or '—'} | " + " | ".join(_roofline_columns(c)) + " |")
        lines.append("")
    return "\n".join(lines)


def _place(c: CellResult) -> str:
    """The release table's column: the device, and on --each-node runs the node it ran on."""
    return f"{c.spec.host} · {c.spec.device}" if c.spec.host else c.spec.device


def render_release(res: RunResults) -> str:
    """Release table: one row per model × precision × scenario, one column per device (tok/s, TTFT, verdict)."""
    devices = sorted({_place(c) for c in res.cells})
    rows: dict[tuple[str, str, str], dict[str, CellResult]] = defaultdict(dict)
    for c in res.cells:
        params = ",".join(f"{k}={v}" for k, v in sorted(c.spec.scenario.params.items()))
        rows[(c.spec.model.name, c.spec.precision, c.spec.scenario.name + (f"[{params}]" if params else ""))][
            _place(c)] = c
    lines = [f"# Release report — suite {md_code(res.metadata.suite_name)}, run {md_code(res.metadata.run_id)}", "",
             "Each device cell: the scenario's two headline figures (text generation: output tok/s and TTFT; "
             "continuous batching: total tok/s and TTFT p90; embeddings/rerank: documents/s and latency; "
             "tokenizer: OpenVINO encode tok/s and mismatches) and the verdict (all gates and checks).", "",
             "| model | precision | scenario | " + " | ".join(md_text(d) for d in devices) + " |",
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
        lines.append(f"| {md_text(model)} | {precision} | {md_text(scenario)} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"
