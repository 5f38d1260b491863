"""Load against an OpenAI-compatible endpoint (OVMS paths; `local` = harness serve on loopback)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from harness.core.metrics import (
    TPOT,
    TTFT,
    BatchOutputThroughput,
    BatchTotalThroughput,
    ClientCPU,
    ErrorRate,
    Goodput,
    PeakOutputThroughput,
    RequestThroughput,
)
from harness.kinds.base import (
    LLM_PROPERTY_KNOBS,
    MAX_PROMPT_TOKENS,
    Column,
    KindSpec,
    Knob,
    Params,
    ReportTable,
)
from harness.kinds.text import ACCURACY

if TYPE_CHECKING:
    from harness.core.schema import CellSpec

Api = Literal["chat", "completions", "embeddings", "rerank"]
DEFAULT_TEXTS_PER_REQUEST = {"rerank": 8}
# APIs that answer with vectors or scores, not generated text
UNARY_APIS = ("embeddings", "rerank")


class ServingParams(Params):
    keyed = ("api",)
    api: Api = "chat"
    concurrency: int = Field(1, gt=0, description="closed loop: requests in flight")
    rate: float | None = Field(None, gt=0, description="open loop: requests per second (replaces concurrency)")
    burstiness: float = Field(1.0, gt=0, description="gamma shape of the open loop's gaps (1 = Poisson)")
    requests: int = Field(16, gt=0)
    duration_s: float | None = Field(None, gt=0, description="run the load this long instead of `requests`")
    stream: bool = True
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                    description="environment variable holding the API key")
    served_model: str | None = Field(
        None, min_length=1, description="the request's `model` (OVMS routes by the served model's name); "
        "default: the suite's model name when the server lists it, else the server's only model "
        "(from /v3/models)")
    request_timeout_s: float = Field(60, gt=0)
    batch_size: int | None = Field(None, gt=0, description="texts per embeddings / rerank request")
    range_ratio: float = Field(0.0, ge=0, lt=1, description="input and output lengths drawn uniformly from "
                               "±range_ratio around the nominal ones, per request")
    tokenizer: str | None = Field(
        None, min_length=1, description="what counts prompt tokens: `model` (the suite's model, prepared locally), "
        "a folder with an OpenVINO or Hugging Face tokenizer (relative to the suite file), a Hugging Face tokenizer "
        "name, or `usage` (no tokenizer: prompt lengths calibrated on the server's usage counts). Default: `model` "
        "for server local, `usage` for a remote server, which then needs no local model")
    slo_search: bool = Field(False, description="find the highest open-loop rate within the suite's slo by "
                             "bisection on the rate, starting at `rate`: one load of `requests` per rate tried")
    slo_attainment_pct: float = Field(90, gt=0, le=100, description="slo_search: share of a load's requests that "
                                      "must complete within every limit of the suite's slo for its rate to pass")
    search_precision: float = Field(0.1, gt=0, le=1, description="slo_search: stop when the lowest failing rate is "
                                    "within this fraction above the highest passing one")
    search_probes: int = Field(8, ge=2, le=40, description="slo_search: most loads to run")
    # what the requests contain (harness/load/content.py)
    shared_prefix_tokens: int | None = Field(
        None, gt=0, le=MAX_PROMPT_TOKENS, description="chat / completions: a system prompt of this many tokens "
        "(exact under the model's tokenizer), identical across requests, before the user turn of the input length; "
        "chat sends it as a system message, completions prepend it to the prompt")
    prefix_groups: int = Field(1, gt=0, description="with shared_prefix_tokens: this many distinct prefixes, "
                               "request (or conversation) k taking prefix k mod prefix_groups")
    turns: int = Field(1, gt=0, description="chat / completions: requests per conversation; each turn carries "
                       "the earlier user turns (with their images) and the server's actual answers to them, a "
                       "conversation's turns go in order to one closed-loop client, and `requests` counts turns")
    images_per_request: int = Field(0, ge=0, le=16, description="chat: synthetic PNG images sent with each "
                                    "user turn as OpenAI image_url content parts (base64 data URLs)")
    image_size: int = Field(224, gt=0, le=4096, description="side of each image in pixels")
    enable_prefix_caching: bool | None = Field(
        None, description="server local only: the SchedulerConfig field harness serve builds its pipeline with "
        "(None: openvino-genai's default)")
    rate_end: float | None = Field(None, gt=0, description="open loop ramp: the rate goes linearly from `rate` to "
                                   "`rate_end` over `duration_s` (or over the time in which `requests` are expected)")
    trace: str | None = Field(None, min_length=1, description="replay an arrival trace (Mooncake JSONL, Azure CSV or "
                              "harness JSONL, see docs/metrics.md): send times and each request's input/output "
                              "lengths come from it; a relative path is relative to the suite file")
    trace_format: Literal["auto", "mooncake", "azure", "harness"] = Field(
        "auto", description="the trace's format; auto: a .csv is Azure's, JSON lines by their keys")
    trace_time_scale: float = Field(1.0, gt=0, description="multiplies the trace's (or replay's) times: 0.5 = twice "
                                    "as fast")
    cancel_fraction: float = Field(0.0, ge=0, le=1, description="share of measured requests (each drawn by a seeded "
                                   "RNG) that the client cancels mid-stream; counted apart, not as errors")
    cancel_after_tokens: int = Field(1, gt=0, description="a cancelled request closes its stream after this many "
                                     "content chunks")
    replay_payloads: str | None = Field(None, min_length=1, description="send exactly the request bodies recorded "
                                        "in a run's payloads/<cell>.jsonl, at their recorded times (scaled by "
                                        "trace_time_scale); relative to the suite file")
    export_requests: bool = Field(True, description="write every request's timings (RUN/requests/<cell>.jsonl) and "
                                  "body (RUN/payloads/<cell>.jsonl)")
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
        if not {"rate", "trace", "replay_payloads"} & set(out):  # open-loop cells have no concurrency
            out.setdefault("concurrency", [1])
        return out

    @classmethod
    def check_axes(cls, axes: dict[str, list[Any]]) -> None:
        if "batch_size" in axes and not set(axes.get("api", ["chat"])) & {"embeddings", "rerank"}:
            raise ValueError("batch_size (texts per request) applies to api embeddings or rerank")
        if True in axes.get("slo_search", []) and "rate" not in axes:
            raise ValueError("slo_search searches open-loop rates: give `rate`, the first rate to try")
        if True in axes.get("slo_search", []) and {"embeddings", "rerank"} & set(axes.get("api", ["chat"])):
            raise ValueError("slo_search applies to api chat or completions (limits on TTFT / TPOT / e2e)")
        apis = set(axes.get("api", ["chat"]))
        # a parameter counts as given with a value other than its default (turns: 1 is plain requests)
        given = {k: next(v for v in values if v is not None and v != cls.model_fields[k].default)
                 for k, values in axes.items()
                 if k in cls.model_fields and any(v is not None and v != cls.model_fields[k].default for v in values)}
        for name, allowed in (("shared_prefix_tokens", {"chat", "completions"}), ("turns", {"chat", "completions"}),
                              ("images_per_request", {"chat"})):
            if name in given and apis - allowed:
                raise ValueError(f"{name}={given[name]} applies to api {' or '.join(sorted(allowed))}, not "
                                 f"{', '.join(sorted(apis - allowed))}")
        if "prefix_groups" in given and "shared_prefix_tokens" not in given:
            raise ValueError(f"prefix_groups={given['prefix_groups']} needs shared_prefix_tokens")
        if "turns" in given and "rate" in axes:
            raise ValueError(f"turns={given['turns']} runs a conversation's turns one after another on a "
                             "closed-loop client: use concurrency, not rate")
        if "rate_end" in axes and "rate" not in axes:
            raise ValueError("rate_end (a ramp) goes with rate, the ramp's start")
        schedules = [k for k in ("rate", "trace", "replay_payloads") if k in axes]
        if len(schedules) > 1:
            raise ValueError(f"{' and '.join(schedules)} are different arrival schedules: give one")
        if "trace" in axes and set(axes.get("api", ["chat"])) - {"chat", "completions"}:
            raise ValueError("trace gives output lengths: it applies to api chat or completions")
        if any(axes.get("cancel_fraction", [0])) and False in axes.get("stream", [True]):
            raise ValueError("cancel_fraction cancels streams mid-way: it needs stream: true")

    def tokenizer_source(self, remote: bool) -> str:
        """`model`, `usage`, or a tokenizer folder or name."""
        return self.tokenizer or ("usage" if remote else "model")

    def requests_per_call(self) -> int:
        return self.concurrency

    def outputs_text(self) -> bool:
        return self.api not in UNARY_APIS

    def texts_per_call(self) -> int:
        """Documents per request: embeddings send a list of inputs, rerank a query and its documents."""
        return self.batch_size or DEFAULT_TEXTS_PER_REQUEST.get(self.api, 1)


def sends_greedy_prompts(cell: CellSpec) -> bool:
    """Whether a serving cell's requests are the plain greedy cell's prompts, as matches_greedy needs: the
    completions API (chat requests go through the chat template) on a model the harness made (not a remote
    server's), with no shared prefix or conversation history before them and no trace's or recording's bodies."""
    p = cell.scenario.params
    return (not cell.remote and p.get("api") == "completions" and not p.get("shared_prefix_tokens")
            and int(p.get("turns") or 1) <= 1 and not any(p.get(k) for k in ("trace", "replay_payloads")))


def needs_local_model(cell: CellSpec) -> bool:
    """Every cell needs its model prepared here except a serving cell against a remote server whose tokenizer
    is not the model's."""
    return not cell.remote or ServingParams.of(cell).tokenizer_source(remote=True) == "model"


def closed_loop(cell: CellSpec) -> bool:
    """A load of `concurrency` requests in flight (an open loop's rate, trace or replay sets its own pace)."""
    return not {"rate", "trace", "replay_payloads"} & {k for k, v in cell.scenario.params.items() if v is not None}


KIND = KindSpec(
    name="serving", params=ServingParams, backend="harness.execute.backends.serving:BACKEND", same_as_greedy=True, served=True,
    resolve_files="harness.load.suite_files:resolve_serving_files",
    cell_rules="harness.load.suite_files:serving_cell_rules",
    needs_local_model=needs_local_model, without_local_model="harness.load.prompt_tokenizer:check_remote_tokenizer",
    bare_reference="harness.execute.backends.serving:bare_reference_fields",
    greedy_comparable=sends_greedy_prompts,
    # requests in flight (the load a deployment takes), and the local server's pipeline settings
    tune_space=(Knob("params.concurrency", (None, 1, 2, 4, 8, 16, 32), remote=True, applies=closed_loop),
                Knob("params.enable_prefix_caching", (None, True, False)), *LLM_PROPERTY_KNOBS),
    report=ReportTable(
        title="Serving (OpenAI-compatible endpoint)",
        columns=(Column("req/s", RequestThroughput.tag, digits=2), Column("goodput req/s", Goodput.tag, digits=2),
                 Column("load out tok/s", BatchOutputThroughput.tag), Column("load total tok/s", BatchTotalThroughput.tag),
                 Column("TTFT p50 ms", TTFT.tag, "median"), Column("TTFT p90 ms", TTFT.tag, "p90"),
                 Column("TTFT p99 ms", TTFT.tag, "p99"), Column("TPOT p50 ms", TPOT.tag, "median", 2),
                 Column("TPOT p90 ms", TPOT.tag, "p90", 2), Column("TPOT p99 ms", TPOT.tag, "p99", 2),
                 Column("errors %", ErrorRate.tag, "max", 1), Column("busiest s tok/s", PeakOutputThroughput.tag, "max"),
                 Column("client CPU %", ClientCPU.tag, "max", 1)),
        headline=(Column("req/s", RequestThroughput.tag, digits=2), Column("ms TTFT p90", TTFT.tag, "p90")),
        note="Load on the suite's server (OVMS paths; `local` = harness serve on loopback): closed loop at "
        "`concurrency` or open loop at `rate`. TTFT = first content chunk; TPOT = (e2e − TTFT) / (usage tokens − 1); "
        "req/s (completed requests), load out and load total (in + out) tok/s over the whole load (not a per-request "
        "median); goodput = completed "
        "requests meeting every per-request limit of the suite's `slo:` per second; client CPU = the generator's own "
        "CPU share.",
        speed=(Column("req/s", RequestThroughput.tag, "median", 2), Column("TTFT p90 ms", TTFT.tag, "p90"),
               Column("TPOT ms", TPOT.tag, "median", 2)),
        speedup_metric=RequestThroughput.tag, accuracy=ACCURACY))
