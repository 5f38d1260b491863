"""Load against an OpenAI-compatible endpoint (OVMS paths; `local` = harness serve on loopback)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from harness.kinds.base import Column, KindSpec, Params, ReportTable
from harness.kinds.text import ACCURACY

Api = Literal["chat", "completions", "embeddings", "rerank"]
DEFAULT_TEXTS_PER_REQUEST = {"rerank": 8}


class ServingParams(Params):
    keyed = ("api",)
    api: Api = "chat"
    concurrency: int = Field(1, gt=0, description="closed loop: requests in flight")
    rate: float | None = Field(None, gt=0, description="open loop: requests per second (replaces concurrency)")
    burstiness: float = Field(1.0, gt=0, description="gamma shape of the open loop's gaps (1 = Poisson)")
    requests: int = Field(16, gt=0)
    duration_s: float | None = Field(None, gt=0, description="run the load this long instead of `requests`")
    stream: bool = True
    api_key_env: str | None = Field(None, description="environment variable holding the API key")
    served_model: str | None = Field(
        None, description="the request's `model` (OVMS routes by the served model's name); default: the suite's "
        "model name when the server lists it, else the server's only model (from /v3/models)")
    request_timeout_s: float = Field(60, gt=0)
    batch_size: int | None = Field(None, gt=0, description="texts per embeddings / rerank request")
    range_ratio: float = Field(0.0, ge=0, lt=1, description="input and output lengths drawn uniformly from "
                               "±range_ratio around the nominal ones, per request")
    window_s: float = Field(10, gt=0, description="time-sliced report: the load cut into windows this many "
                            "seconds long (requests completed, output tok/s, TTFT and TPOT per window)")
    metrics_interval_s: float = Field(1, ge=0, description="read the server's /metrics every this many seconds "
                                      "during the load (a background thread) for the report's time series; 0: off; "
                                      "else at least 0.05")

    @field_validator("metrics_interval_s")
    @classmethod
    def _scrape_interval(cls, v: float) -> float:
        if 0 < v < 0.05:  # a scraper reading in a tight loop would load the machine it measures
            raise ValueError("is 0 (off) or at least 0.05 s")
        return v

    @classmethod
    def default_axes(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out = super().default_axes(axes)
        if "rate" not in out:
            out.setdefault("concurrency", [1])
        return out

    @classmethod
    def check_axes(cls, axes: dict[str, list[Any]]) -> None:
        if "batch_size" in axes and not set(axes.get("api", ["chat"])) & {"embeddings", "rerank"}:
            raise ValueError("batch_size (texts per request) applies to api embeddings or rerank")

    def texts_per_call(self) -> int:
        """Documents per request: embeddings send a list of inputs, rerank a query and its documents."""
        return self.batch_size or DEFAULT_TEXTS_PER_REQUEST.get(self.api, 1)


KIND = KindSpec(
    name="serving", params=ServingParams, backend="harness.backends.serving:run", same_as_greedy=True,
    report=ReportTable(
        title="Serving (OpenAI-compatible endpoint)",
        columns=(Column("req/s", "request_rps", digits=2), Column("goodput req/s", "goodput_rps", digits=2),
                 Column("load out tok/s", "batch_output_tps"), Column("load total tok/s", "batch_total_tps"),
                 Column("TTFT p50 ms", "ttft_ms", "median"), Column("TTFT p90 ms", "ttft_ms", "p90"),
                 Column("TTFT p99 ms", "ttft_ms", "p99"), Column("TPOT p50 ms", "tpot_ms", "median", 2),
                 Column("TPOT p90 ms", "tpot_ms", "p90", 2), Column("TPOT p99 ms", "tpot_ms", "p99", 2),
                 Column("errors %", "error_rate_pct", "max", 1), Column("busiest s tok/s", "peak_output_tps", "max"),
                 Column("client CPU %", "client_cpu_pct", "max", 1)),
        headline=(Column("req/s", "request_rps", digits=2), Column("ms TTFT p90", "ttft_ms", "p90")),
        note="Load on the suite's server (OVMS paths; `local` = harness serve on loopback): closed loop at "
        "`concurrency` or open loop at `rate`. TTFT = first content chunk; TPOT = (e2e − TTFT) / (usage tokens − 1); "
        "req/s (completed requests), load out and load total (in + out) tok/s over the whole load (not a per-request "
        "median); goodput = completed "
        "requests meeting every per-request limit of the suite's `slo:` per second; client CPU = the generator's own "
        "CPU share.",
        speed=(Column("req/s", "request_rps", "median", 2), Column("TTFT p90 ms", "ttft_ms", "p90"),
               Column("TPOT ms", "tpot_ms", "median", 2)),
        speedup_metric="request_rps", accuracy=ACCURACY))
