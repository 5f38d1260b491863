"""docs/metrics.md, generated: the metric registry's table and how checks, loads and traffic are judged."""

from __future__ import annotations

from harness.analyze.checks import CHECKS_DOC
from harness.analyze.load_analysis import LOAD_DOC
from harness.core.metrics import METRICS
from harness.load.traces import TRAFFIC_DOC

DOC_PREAMBLE = """# Metrics

Generated from `harness/core/metrics.py` by `harness metrics --out docs/metrics.md`; do not edit by hand.

Per-sample metrics are computed from each measured generate() call's raw clock readings (kept in
results.json); summaries pool the values of the measured iterations (warm-up excluded): mean,
median, p90, p99 (linear interpolation), sample standard deviation (n − 1), min, max,
CV = sd / mean, and a distribution-free 95% confidence interval of the median from order
statistics (undefined below 6 values). Per-batch metrics (continuous batching) are computed per
batch of concurrent requests; the requests of a batch are samples. Per-cell metrics are measured
once per cell. The memory roofline figures (weight bytes per token, host bandwidth, achieved bandwidth,
roofline %) are explained, with what they leave out and a check on a real machine, in docs/roofline.md.
"""


def markdown_doc() -> str:
    """The whole docs/metrics.md."""
    return (DOC_PREAMBLE + "\n" + markdown_table() + "\n\n" + LOAD_DOC + "\n" + CHECKS_DOC + "\n" + TRAFFIC_DOC
            + "\n" + SERVING_DOC)


def markdown_table() -> str:
    """The metric reference table used by docs/metrics.md."""
    rows = ["| tag | name | unit | better | scope | definition |", "|---|---|---|---|---|---|"]
    for tag, m in METRICS.items():
        better = "higher" if m.higher_is_better else "lower"
        rows.append(f"| `{tag}` | {m.title} | {m.unit} | {better} | {m.scope} | {m.formula()} |")
    return "\n".join(rows)


SERVING_DOC = """## Serving loads: prompt lengths, repeated loads, SLO search

**Prompt lengths on a remote server.** With a tokenizer (the suite's model, a tokenizer folder or a Hugging
Face name) each synthetic prompt is cut to exactly the length asked for under it. Without one (`tokenizer:
usage`, the default for a remote server) two probe requests ask the server for one token each: a one-character
text, whose `usage.prompt_tokens` less one is the fixed overhead (chat template, BOS), and the starts (400
characters each) of four synthetic texts, which give tokens per character averaged over texts; each prompt is
then its own synthetic text cut to
`round((L − overhead) / per_char)` characters (at a space or line end within the last 10%). The
`input_tokens` recorded for every request is the server's own count either way. A server that reports no
usage leaves the lengths nominal (a word, or a quarter line of code, a token).

**Repeated loads.** With `processes: N` a serving cell runs N separate loads. For each load the report takes
req/s, load output tok/s and goodput (from its batch record), TTFT p90, TPOT p50 and e2e p90 (over its
requests), and gives their mean with a Student-t 95% confidence interval, mean ± t(0.975, N − 1) · s / √N
(s: sample standard deviation of the N figures) — the spread of whole loads, which is what a rerun of the
cell would see, not of requests within one load.

**SLO search.** `slo_search: true` looks for the highest open-loop (Poisson) rate whose load meets the
suite's `slo:`. A load passes when at least `slo_attainment_pct` % of the requests it sent completed and met
every per-request limit (an error is a miss). From `rate`, the rate doubles while loads pass and halves while
they fail; once a passing rate L and a failing rate H bracket the limit, √(L·H) is tried, until H / L − 1 ≤
`search_precision` or `search_probes` loads have run. The bracket is always (highest passing rate below
the lowest failing one, lowest failing rate), so a noisy pass above a failure cannot move the answer up.
Each load sends `requests` (or runs `duration_s`); warm-up precedes the first load only. The cell's
samples and figures are those of the load at the rate found; the other loads are kept as warm-up records,
and the rates, shares and verdicts of all of them are in `slo_search` of the cell's result.
"""
