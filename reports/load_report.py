"""Serving loads over time, for the reports: the data behind the HTML charts and the Markdown tables (time slices,
requests in flight, the server's /metrics series), all derived from the stored records at render time
(harness/analyze/load_analysis.py), so older results render the same way."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from harness.analyze.load_analysis import (
    TimeSlice,
    downsample_steps,
    in_flight_steps,
    load_batch,
    load_values,
    request_intervals,
    server_series,
    time_slices,
)
from harness.core.escaping import md_code
from harness.core.metrics import (
    CorrectedE2E,
    CorrectedTTFT,
    LoadDecodeThroughput,
    LoadPrefillThroughput,
    PrefillThroughput,
    SendLag,
)
from harness.core.schema import BatchRecord, CellResult, RunResults
from harness.kinds import kind_spec
from harness.kinds.serving import ServingParams
from reports.rows import fmt_value

DEFAULT_WINDOW_S: float = ServingParams.model_fields["window_s"].default
CHART_POINTS = 240  # points per line: a 1000-request load's chart stays a few kB
SERVER_FAMILIES = 4  # server families charted per cell
MAX_SLICES = 200  # time windows per load in the tables


@dataclass(frozen=True)
class LoadView:
    """One serving cell's load as the reports show it."""

    cell: CellResult
    batch: BatchRecord
    window_s: float
    slices: list[TimeSlice]
    in_flight: list[tuple[float, float, float]]  # (s after start, time-weighted mean, max) per bucket
    server: list[tuple[str, str, list[tuple[float, float]]]]  # (family, "rate/s" | "value", points)
    duration_s: float


def window_s(cell: CellResult) -> float:
    """The cell's report window; the default where a foreign results file holds parameters this harness refuses."""
    try:
        return ServingParams.of(cell.spec).window_s
    except ValidationError:
        return DEFAULT_WINDOW_S


def load_views(cells: list[CellResult]) -> list[LoadView]:
    """The measured serving cells that ran a load."""
    out = []
    for c in cells:
        batch = load_batch(c)
        if c.status != "ok" or not kind_spec(c.spec.scenario.kind).served or batch is None or batch.end_ns <= batch.start_ns:
            continue
        timeline = c.check_outputs.load_timeline
        # a window far shorter than the load would make thousands of rows: widen it to keep at most MAX_SLICES
        w = max(window_s(c), (batch.end_ns - batch.start_ns) / 1e9 / MAX_SLICES)
        steps = in_flight_steps(request_intervals(c.samples, timeline))
        out.append(LoadView(
            cell=c, batch=batch, window_s=w, slices=time_slices(c.samples, batch, w, timeline),
            in_flight=downsample_steps(steps, batch.start_ns, batch.end_ns, CHART_POINTS),
            server=server_series(timeline, batch.start_ns, SERVER_FAMILIES, CHART_POINTS) if timeline else [],
            duration_s=(batch.end_ns - batch.start_ns) / 1e9))
    return out


def figures(view: LoadView) -> list[tuple[str, str]]:
    """(label, value) of the load-level figures, '—' where not measured."""
    c = view.cell
    # results aggregated before these figures existed get them here, from the same stored requests
    v = {**load_values(c.samples, view.batch, c.check_outputs.load_timeline), **c.cell_values}
    s = c.summaries

    def stat(tag: str, name: str, digits: int = 0) -> str:
        return fmt_value(getattr(s[tag], name), digits) if tag in s else "—"

    timeline = c.check_outputs.load_timeline
    scrape = "off"
    if timeline is not None and timeline.interval_s:
        cpu = timeline.scraper_cpu_s
        scrape = (f"{len(timeline.scrapes)} scrapes every {timeline.interval_s:g} s"
                  + (f", scraper CPU {cpu:.2f} s ({100 * cpu / view.duration_s:.2f}% of the load)"
                     if cpu is not None and view.duration_s > 0 else ""))
    return [
        ("load duration s", fmt_value(view.duration_s, 1)),
        ("time window s", f"{view.window_s:.4g}" + ("" if view.window_s == window_s(c) else
                                                    f" (window_s {window_s(c):g} widened to keep {MAX_SLICES} rows)")),
        ("effective concurrency (mean / peak)",
         f"{fmt_value(v.get('concurrency_mean'), 2)} / {fmt_value(v.get('concurrency_max'), 0)}"),
        ("load prefill tok/s (while prefilling)", fmt_value(v.get(LoadPrefillThroughput.tag), 0)),
        ("load decode tok/s (while decoding)", fmt_value(v.get(LoadDecodeThroughput.tag), 0)),
        ("prefill tok/s per request p50", stat(PrefillThroughput.tag, "median")),
        ("e2e p50 / p99 ms", f"{stat('e2e_ms', 'median')} / {stat('e2e_ms', 'p99')}"),
        ("e2e from schedule p50 / p99 ms (CO-corrected)",
         f"{stat('e2e_co_ms', 'median')} / {stat('e2e_co_ms', 'p99')}" if CorrectedE2E.tag in s else "— (closed loop)"),
        ("TTFT from schedule p90 ms (CO-corrected)", stat(CorrectedTTFT.tag, "p90") if CorrectedTTFT.tag in s else "—"),
        ("send lag behind schedule p99 ms", stat(SendLag.tag, "p99", 1) if SendLag.tag in s else "—"),
        ("server /metrics", scrape),
    ]


SLICE_HEADERS = ("window s", "completed", "errors", "output tok/s", "TTFT p50 ms", "TTFT p90 ms", "TPOT p50 ms")


def slice_cells(x: TimeSlice) -> list[str]:
    return [f"{x.start_s:g}–{x.end_s:.4g}", str(x.completed), "—" if x.errors is None else str(x.errors),
            fmt_value(x.output_tps, 1),
            fmt_value(x.ttft_p50_ms, 0), fmt_value(x.ttft_p90_ms, 0), fmt_value(x.tpot_p50_ms, 2)]


def markdown_lines(res: RunResults) -> list[str]:
    """The serving loads over time: per cell its load-level figures and one row per time window."""
    views = load_views(res.cells)
    if not views:
        return []
    lines = ["", "### Serving loads over time", "",
             "Per load: requests in flight (time-weighted mean and peak), prefill and decode tok/s while those phases "
             "ran, latency from the arrival schedule (open loop; corrected for coordinated omission), then per window "
             "of `window_s`: requests completed and failed in it, output tokens delivered in it per second, TTFT and "
             "TPOT of the requests completed in it. Definitions: docs/metrics.md.", ""]
    for view in views:
        lines += [f"#### {md_code(view.cell.key)}", "",
                  "; ".join(f"{label}: {value}" for label, value in figures(view)), "",
                  "| " + " | ".join(SLICE_HEADERS) + " |", "|" + "---|" * len(SLICE_HEADERS)]
        lines += ["| " + " | ".join(slice_cells(x)) + " |" for x in view.slices]
        lines.append("")
    return lines
