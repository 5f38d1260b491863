"""The one versioned result schema. Everything downstream of the runner reads only this.

`results.json` is a `RunResults`. Bump `SCHEMA_VERSION` on any incompatible change and
re-export `schema/results.schema.json` with `harness schema`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from harness.core.errors import HarnessInputError
from harness.core.input_files import parse_json

SCHEMA_VERSION = "1.15"

ExportPrecision = Literal["fp16", "int8", "int4", "gguf"]
# "served": a remote server's model, whatever it runs; the harness neither exported nor measured its precision
Precision = Literal["fp16", "int8", "int4", "gguf", "served"]
# what runs a cell's model: OpenVINO (GenAI pipelines, or the runtime itself for logits), or the peer runtime users
# compare it with on a CPU, llama.cpp (through llama-cpp-python, on a GGUF file; since 1.14)
Runtime = Literal["openvino", "llama.cpp"]
DEFAULT_RUNTIME: Runtime = "openvino"
RUNTIMES: tuple[str, ...] = get_args(Runtime)
REMOTE_DEVICE = "remote"  # a remote server's cells: the server's device is the server's business
CellStatus = Literal["ok", "failed", "timeout", "crashed", "skipped"]
# a cell that did not finish (skipped: its device is missing here): exit code 1, --retry-failed, history's n_failed
FAILED_STATUSES: frozenset[str] = frozenset({"failed", "timeout", "crashed"})
CheckStatus = Literal["pass", "fail", "not_run"]
PropertyValue = str | int | float | bool


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- what a cell runs


class CompressionSpec(Strict):
    """Weight-compression options for int8/int4 (NNCF: in process from the fp16 IR for text models, else through
    optimum-intel)."""

    group_size: int = Field(128, ge=-1, le=65536, description="int4 group size; -1 for per-channel")
    ratio: float = Field(1.0, gt=0, le=1, description="share of layers in int4, the rest int8")
    sym: bool = Field(False, description="symmetric quantisation")
    awq: bool = Field(False, description="int4: activation-aware weight quantization (needs `dataset`); since 1.14")
    scale_estimation: bool = Field(False, description="int4: scale estimation (needs `dataset`); since 1.14")
    dataset: bool = Field(False, description="int4: data-aware compression, calibrated on the built-in calibration "
                          "text (harness/models/texts: never a quality pass's text); since 1.14")

    @field_validator("group_size")
    @classmethod
    def _group(cls, v: int) -> int:
        if v == 0:
            raise ValueError("group_size is a positive number of channels, or -1 for per-channel")
        return v

    @model_validator(mode="after")
    def _data_aware(self) -> CompressionSpec:
        if (self.awq or self.scale_estimation) and not self.dataset:
            raise ValueError("awq and scale_estimation calibrate on data: set dataset: true")
        return self

    def label(self) -> str:
        """A short readable name, e.g. g64-r0.8-sym-awq-se-data (a cell key's compression segment)."""
        parts = [f"g{self.group_size}", f"r{self.ratio:g}", "sym" if self.sym else "asym"]
        parts += [name for name, on in (("awq", self.awq), ("se", self.scale_estimation), ("data", self.dataset)) if on]
        return "-".join(parts)

    def key_dict(self) -> dict[str, Any]:
        """What a cache key holds: the options since 1.14 only when set, so entries built before keep their keys."""
        out = self.model_dump(include={"group_size", "ratio", "sym"})
        out.update({k: True for k in ("awq", "scale_estimation", "dataset") if getattr(self, k)})
        return out


class GenerationSpec(Strict):
    """Generation config of one cell."""

    max_new_tokens: int = Field(64, ge=1)
    min_new_tokens: int = Field(0, ge=0)
    ignore_eos: bool = True
    mode: Literal["greedy", "sampling", "beam"] = "greedy"
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    seed: int = 42
    num_beams: int = Field(1, ge=1)
    apply_chat_template: bool = False


class PromptSpec(Strict):
    """Prompts of one cell: synthetic of a given input length, or texts from a file."""

    source: Literal["synthetic", "file"] = "synthetic"
    input_tokens: int | None = Field(None, ge=1)
    # "words" is the default only so that results written before schema 1.5 (words only) read true; suites
    # default to "code"
    style: Literal["code", "words", "instruct"] = Field(
        "words", description="synthetic prompts: Python-like code, English words, or an instruction about code")
    file: str | None = None
    texts: list[str] = Field(default_factory=list)
    vary_per_iteration: bool = Field(
        True,
        description="each iteration gets a different prompt so prefix caching cannot shorten TTFT",
    )


class ModelRef(Strict):
    name: str
    source: str
    draft: str | None = None
    draft_precision: ExportPrecision | None = Field(None, description="the draft's precision; None: the cell's")


class ScenarioSpec(Strict):
    name: str
    kind: str = Field(description="a kind of the registry (harness.kinds)")
    params: dict[str, PropertyValue] = Field(default_factory=dict)


class SideSpec(Strict):
    """What one side changes on top of the suite: at most an environment, a model folder, a device, OpenVINO
    properties and scenario parameters (an A/B side, a bisect candidate, a cell's reference side, a tuned setting)."""

    env: str | None = None
    model: str | None = None
    device: str | None = None
    runtime: Runtime | None = Field(None, description="the runtime the side runs its cells on; since 1.14")
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    params: dict[str, PropertyValue] = Field(default_factory=dict, description="scenario parameters the side sets "
                                             "(its kind's, e.g. max_num_batched_tokens); since 1.15")

    def label(self) -> str:
        parts = [f"env={self.env}"] if self.env else []
        parts += [f"model={self.model}"] if self.model else []
        parts += [f"device={self.device}"] if self.device else []
        parts += [f"runtime={self.runtime}"] if self.runtime else []
        parts += [f"properties.{k}={v}" for k, v in sorted(self.properties.items())]
        parts += [f"params.{k}={v}" for k, v in sorted(self.params.items())]
        return " ".join(parts) or "the suite as is"


class ReferenceSide(Strict):
    """A pinned reference a cell is measured against, interleaved with it in the same run (the suite's
    `reference_side`): its ratios form their own series in the history, named by `label`."""

    label: str = Field(description="the name of the ratio series, e.g. r2026.3")
    side: SideSpec
    process_pairs: int = Field(4, ge=1, le=100, description="pairs of fresh processes (reference and cell, both "
                               "loaded) each cell is measured against it in")
    blocks: int = Field(4, ge=1, le=1000, description="blocks (two call pairs each, either side first once) per "
                        "process pair")
    slice_ms: float | None = Field(25, ge=1, le=10000, description="the two calls of a pair run at once, one side at a "
                                   "time, switching every slice_ms; None: one call after the other; since 1.13")



class Gate(Strict):
    """A pass/fail limit on one metric's summary, for qualification and release suites."""

    metric: str
    stat: Literal["median", "mean", "p90", "p99", "min", "max"] = "median"
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        parts = [f">= {self.min:g}" if self.min is not None else "", f"<= {self.max:g}" if self.max is not None else ""]
        return f"{self.metric} {self.stat} " + " and ".join(p for p in parts if p)


class ChangeSettings(BaseModel):
    """How change points are found; defaults, a suite's `changes:` block, then the command line."""

    model_config = ConfigDict(extra="forbid")

    max_pvalue: float = Field(0.001, gt=0, lt=1, description="trimmed Welch t-test p-value a change point must be below")
    min_magnitude: float = Field(0.02, ge=0, lt=10, description="smallest relative shift reported (0.02 = 2%)")
    min_segment: int = Field(3, ge=2, le=1000, description="runs on each side of a change point at least: a shift "
                             "is confirmed only after this many runs at the new level")
    penalty: float = Field(3.0, gt=0, le=1000, description="PELT penalty per change point, in units of "
                           "run-to-run variance x log(runs)")
    noise: Literal["segments", "series"] = Field(
        "segments", description="the t-test's standard error: `segments`, the two segments' own spread (Yuen's "
        "trimmed Welch test, floored by the series' noise), for absolute series whose noise drifts and has heavy "
        "tails; `series`, the whole series' robust noise sd with the series' degrees of freedom, for series whose "
        "noise is stationary (ratios to a reference side: the machine's drift cancels)")


class RatioChangeSettings(ChangeSettings):
    """Change settings of ratio series (candidate / reference side), tuned by benchmarks/ratio_series_detection.py:
    the drift cancels in a ratio, so its noise is stationary and the series' own noise is the test's error
    (`noise: series`); a 3% shift at 1% noise per run is then found 3 runs after it 92% of the time, with 0.07
    false change points per 100 runs (0.57 with heavy-tailed noise). With the run medians' settings (a Welch test
    of the 3 new runs' own spread, 2 or 3 degrees of freedom) it was found 8.5% of the time."""

    max_pvalue: float = Field(0.01, gt=0, lt=1, description="t-test p-value a change point must be below")
    min_magnitude: float = Field(0.015, ge=0, lt=10, description="smallest relative shift reported (0.015 = 1.5%)")
    penalty: float = Field(2.0, gt=0, le=1000, description="PELT penalty per change point, in units of "
                           "run-to-run variance x log(runs)")
    noise: Literal["segments", "series"] = Field("series", description="see ChangeSettings.noise")


class CellSpec(Strict):
    """Everything a worker process needs to run one cell, and nothing else."""

    key: str
    model: ModelRef
    precision: Precision
    device: str
    scenario: ScenarioSpec
    generation: GenerationSpec
    prompts: PromptSpec
    compression: CompressionSpec = Field(default_factory=CompressionSpec)
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    warmup: int = Field(1, ge=0)
    iterations: int = Field(3, ge=1)
    min_measure_s: float = Field(
        0, ge=0, description="keep measuring past `iterations` until this many seconds of measured "
        "iterations (per process), up to max_iterations")
    max_iterations: int = Field(10000, ge=1, description="cap on measured iterations per process")
    processes: int = Field(
        1, ge=1, description="fresh worker processes per cell, each with its own warm-up and iterations; "
        "with 2 or more, comparisons use per-process medians so run-to-run variance is accounted for")
    timeout_s: float = Field(900, gt=0, description="limit for loading and measuring the cell")
    prepare_timeout_s: float = Field(3600, gt=0, description="limit for building/exporting its models")
    token_timing: Literal["streamer", "genai"] = Field(
        "streamer",
        description="per-token times from a token streamer (exact chunks and ids, costs ~2% on 2 cores) "
        "or from openvino-genai's raw per-step timestamps on the same monotonic clock (no callback)",
    )
    gates: list[Gate] = Field(default_factory=list, description="limits this cell must meet")
    server: str | None = Field(None, description="serving: `local` or the base URL of the server under load")
    slo: dict[str, float] = Field(default_factory=dict, description="serving: per-request limits (metric tag -> "
                                  "max ms) a request must meet to count towards goodput")
    load_twice: bool = Field(
        True, description="load once with an empty compile cache, then again from it (cached compile)"
    )
    validation_prompts: int = Field(
        2, ge=0, le=64, description="greedy text generation: after the timed calls, this many of the measured "
        "prompts are decoded again at f32 inference precision, untimed; matches_greedy compares those exactly")
    fidelity_check: bool = Field(
        False, description="after each worker process, run the bare reference loop (harness/execute/reference.py) in a "
        "fresh process on the same IR, prompts and settings, and check the cell's readings against it")
    fidelity_tolerance: float = Field(
        0.03, gt=0, lt=1, description="fidelity check: largest accepted |harness / reference - 1| for TPOT and tok/s")
    transformers_check: bool = Field(
        True, description="plain greedy cells at fp16 whose model has Hugging Face weights: after the measuring "
        "processes, transformers (PyTorch, f32) scores the f32 validation outputs in its own process "
        "(harness/execute/transformers_reference.py; check matches_transformers); since 1.10")
    transformers_tolerance: float = Field(
        0.05, gt=0, le=10, description="matches_transformers: where transformers' greedy choice is another token, "
        "the largest logit gap (nats) between the two that still counts as a float near-tie; since 1.10")
    environment: str | None = Field(
        None, description="the Python environment (stack version) its worker processes run in; None: the harness's own")
    host: str | None = Field(
        None, description="cluster runs with --each-node: the node (host) the cell is pinned to, an axis of its key")
    runtime: Runtime = Field(DEFAULT_RUNTIME, description="what runs the model: OpenVINO, or llama.cpp on the GGUF "
                             "file (precision gguf); an axis of the key when not openvino; since 1.14")
    reference_side: ReferenceSide | None = Field(
        None, description="the suite's pinned reference, measured interleaved with this cell (CellResult.vs_reference); "
        "not part of the key")

    @property
    def remote(self) -> bool:
        """A serving cell against a server the harness did not start: nothing is prepared or loaded here."""
        return self.server is not None and self.server != "local"

    def precision_label(self) -> str:
        """The precision as reports name it: int4 with its compression setting where not the default, and the
        runtime where not OpenVINO (e.g. "int4 g64-r0.8-asym-awq-se-data", "gguf · llama.cpp")."""
        text: str = self.precision
        if self.precision == "int4" and self.compression != CompressionSpec():
            text += f" {self.compression.label()}"
        return text + (f" · {self.runtime}" if self.runtime != DEFAULT_RUNTIME else "")

    def axes(self) -> dict[str, PropertyValue]:
        """Flat parameter view used for exclude rules, markers and report columns."""
        flat: dict[str, PropertyValue] = {
            "model": self.model.name,
            "precision": self.precision,
            "device": self.device,
            "scenario": self.scenario.name,
            "kind": self.scenario.kind,
            "max_new_tokens": self.generation.max_new_tokens,
            "mode": self.generation.mode,
        }
        if self.prompts.input_tokens is not None:
            flat["input_tokens"] = self.prompts.input_tokens
        if self.environment is not None:
            flat["env"] = self.environment
        if self.host is not None:
            flat["host"] = self.host
        flat["runtime"] = self.runtime
        if self.precision == "int4":
            flat["compression"] = self.compression.label()
        flat.update(self.scenario.params)
        flat.update(self.properties)
        return flat


# ---------------------------------------------------------------- what a cell produces


class Sample(Strict):
    """One measured (or warm-up) generate() call: raw clock readings plus derived metric values."""

    iteration: int
    warmup: bool
    process: int = Field(0, description="which of the cell's worker processes measured it")
    request: int = Field(0, description="index of the request within a concurrent batch (continuous batching)")
    prompt_index: int
    input_tokens: int
    output_tokens: int
    start_ns: int = Field(description="perf_counter_ns at the generate() call")
    end_ns: int = Field(description="perf_counter_ns when generate() returned")
    chunk_offsets_ms: list[float] = Field(description="streamer chunk arrival times, ms after start")
    chunk_tokens: list[int] = Field(description="tokens carried by each streamer chunk")
    genai: dict[str, float | None] = Field(
        default_factory=dict, description="openvino-genai PerfMetrics readings for this call"
    )
    output_text: str = ""
    output_ids: list[int] = Field(default_factory=list, description="generated token ids as streamed, or (see "
                                  "output_ids_source) the output text re-encoded by the pipeline's tokenizer")
    output_ids_source: Literal["generated", "reencoded"] = Field(
        "generated", description="`reencoded` when no streamer saw the ids (token_timing genai, beam search): "
        "equal texts then have equal ids, but the ids may differ from the ones the model generated")
    readings: dict[str, float] = Field(
        default_factory=dict, description="raw readings of scenarios other than text generation (e.g. tokenizer "
        "encode times); text-generation metrics do not apply to a sample that has them")
    values: dict[str, list[float]] = Field(
        default_factory=dict, description="metric tag -> values computed from this sample"
    )
    scheduled_ns: int | None = Field(
        None, description="serving, open loop: perf_counter_ns at which the arrival schedule meant the request "
        "to be sent (start_ns is when it was); None in a closed loop; since 1.9")
    paused_ms: float | None = Field(
        None, description="sliced pairing: how long the call's process was paused while the other side ran (SIGSTOP); "
        "start_ns, end_ns and the chunk offsets are then on the call's active clock (its pauses taken out) and the "
        "backend's own timed readings are left out; None for a call that was not sliced; since 1.13")


class BatchRecord(Strict):
    """One batch of concurrent requests (continuous batching): raw readings of the whole batch.
    Its requests are Samples with the same process and iteration."""

    iteration: int
    warmup: bool
    process: int = 0
    requests: int
    start_ns: int = Field(description="perf_counter_ns before the first request was added")
    end_ns: int = Field(description="perf_counter_ns after the step that finished the last request")
    output_tokens: int | None = Field(description="generated tokens of the batch's requests (None: the requests "
                                      "generate none, e.g. embeddings)")
    input_tokens: int | None = Field(description="prompt tokens of the batch's requests (None: not reported, e.g. "
                                     "a rerank server gives no usage)")
    steps: int = Field(description="pipeline steps the batch took")
    cache_usage_max_pct: float | None = Field(None, description="highest KV-cache usage seen after a step")
    cache_usage_mean_pct: float | None = Field(None, description="mean KV-cache usage over the steps")
    kv_cache_size_mb: float | None = Field(None, description="KV-cache size the scheduler allocated")
    good_requests: int | None = Field(None, description="serving: completed requests that met every SLO")
    values: dict[str, list[float]] = Field(
        default_factory=dict, description="metric tag -> values computed from this batch"
    )


class ReferenceRecord(Strict):
    """One request of one call of the bare reference loop (the fidelity check): openvino-genai's
    PerfMetrics and the caller's wall clock, with nothing of the harness in the process."""

    process: int = Field(description="the cell's worker process this reference run is paired with")
    iteration: int
    warmup: bool
    request: int = 0
    ttft_ms: float = Field(description="PerfMetrics.get_ttft().mean")
    tpot_ms: float = Field(description="PerfMetrics.get_tpot().mean")
    e2e_ms: float = Field(description="wall time of the generate() call")
    output_tokens: int

    @property
    def output_tps(self) -> float:
        return self.output_tokens / (self.e2e_ms / 1000.0) if self.e2e_ms > 0 else 0.0


class Summary(Strict):
    """Statistics over one metric's values (see harness/core/stats.py)."""

    n: int
    mean: float
    median: float
    p90: float
    p99: float
    stdev: float | None = Field(description="sample standard deviation (n-1); None when n < 2")
    min: float
    max: float
    cv: float | None = Field(description="stdev / mean; None when undefined")
    median_ci_low: float | None = Field(description="95% CI of the median (order statistics)")
    median_ci_high: float | None = None


class CheckResult(Strict):
    name: str
    status: CheckStatus
    detail: str = ""
    gate: Gate | None = Field(None, description="the gate this check judges (None: not a gate); since 1.6")

    @model_validator(mode="before")
    @classmethod
    def _gate_of_older_results(cls, data: Any) -> Any:
        """Results before 1.6 said a check was a gate only in its name ('gate: METRIC STAT >= MIN and <= MAX',
        Gate.describe()); read it back once, here, so nothing downstream parses names."""
        if isinstance(data, dict) and "gate" not in data and str(data.get("name", "")).startswith("gate: "):
            words = data["name"].removeprefix("gate: ").replace(" and ", " ").split()
            if len(words) >= 2:
                limits = dict(zip(words[2::2], words[3::2], strict=False))
                try:
                    data = {**data, "gate": {"metric": words[0], "stat": words[1],
                                             "min": float(limits[">="]) if ">=" in limits else None,
                                             "max": float(limits["<="]) if "<=" in limits else None}}
                except ValueError:
                    pass
        return data


class EncodeMismatch(Strict):
    text: int = Field(description="index of the text in the corpus")
    special_tokens: bool
    at: int | None = Field(description="first differing id position")
    text_start: str


class DecodeMismatch(Strict):
    text: int
    text_start: str
    ov: str
    hf: str


class TokenizerParity(Strict):
    """OpenVINO Tokenizers against Hugging Face on the whole corpus (examples: the first few mismatches)."""

    texts: int
    encode_mismatches: int
    decode_mismatches: int
    encode_examples: list[EncodeMismatch] = Field(default_factory=list)
    decode_examples: list[DecodeMismatch] = Field(default_factory=list)
    errors: list[int] = Field(default_factory=list, description="texts the OpenVINO tokenizer raised on")
    truncated: dict[int, int] = Field(default_factory=dict, description="text -> the ids the OpenVINO tokenizer kept "
                                      "where it cut a long text to its max_length (the Hugging Face ids' start or "
                                      "end): a limit, not a mismatch; since 1.10")


class ServingErrors(Strict):
    counts: dict[str, int] = Field(default_factory=dict, description="failed measured requests per error kind")
    first: list[str] = Field(default_factory=list, description="the first few failures, one line each")
    cancelled: int = Field(0, description="measured requests the client cancelled on purpose (cancel_fraction): "
                           "not failures, not in `counts`; since 1.9")


class MetricsScrape(Strict):
    """One read of the server's /metrics during a serving load."""

    t_ns: int = Field(description="perf_counter_ns of the load process when the response arrived (the clock of "
                      "Sample.start_ns)")
    values: dict[str, float] = Field(default_factory=dict, description="Prometheus sample name with labels -> value; "
                                     "histogram buckets and *_created samples left out")


class LoadTimeline(Strict):
    """A serving load over time, beyond its completed requests: the server's /metrics scraped at an interval, and
    when the failed requests ran (for in-flight counts and per-window errors)."""

    interval_s: float = Field(description="scrape interval asked for (metrics_interval_s); 0: not scraped")
    scrapes: list[MetricsScrape] = Field(default_factory=list, description="the scrapes, oldest first, from just "
                                         "before the load to just after it")
    types: dict[str, str] = Field(default_factory=dict, description="family -> Prometheus type (counter, gauge, "
                                  "histogram, ...) from the # TYPE lines")
    scraper_cpu_s: float | None = Field(None, description="CPU time the scraper thread used (thread_time)")
    failed_start_ns: list[int] = Field(default_factory=list, description="send time of each failed measured request")
    failed_end_ns: list[int] = Field(default_factory=list, description="failure time of each failed measured request")


class TokenDisagreement(Strict):
    """A generated position where transformers, fed the same prompt ids and OpenVINO's tokens before it, chooses
    another token than OpenVINO's f32 validation pass did (or one side stops where the other goes on)."""

    position: int = Field(ge=0, description="index among the generated tokens")
    openvino: int | None = Field(description="OpenVINO's token there; None: OpenVINO had stopped")
    transformers: int | None = Field(description="transformers' greedy choice there (with min_new_tokens, EOS "
                                     "excluded as openvino-genai does); None: max_new_tokens was reached")
    gap: float | None = Field(description="transformers' logit of its choice minus that of OpenVINO's token (of the "
                              "best stop token where OpenVINO stopped), in nats: how far from a tie the two are "
                              "for transformers; None where one side stopped and no tie can explain it")


class TransformersReference(Strict):
    """transformers' greedy choices along a plain greedy cell's f32 validation outputs (harness/execute/transformers_reference.py);
    since 1.10."""

    source: str | None = Field(None, description="the Hugging Face folder transformers loaded")
    tokens: dict[int, int] = Field(default_factory=dict, description="prompt index -> OpenVINO tokens scored")
    disagreements: dict[int, list[TokenDisagreement]] = Field(
        default_factory=dict, description="prompt index -> the positions where the two choose differently")
    error: str | None = Field(None, description="why it did not run (the check is then not run)")
    seconds: float | None = Field(None, description="wall time of the transformers process")
    reused_from: str | None = Field(
        None, description="when transformers scored these exact inputs before (same weights, prompt ids, OpenVINO "
        "outputs, torch and transformers versions): that computation's time; its result is read from the model "
        "cache and no process ran; since 1.11")


def _old_json(raw: Any) -> Any:
    """A value a record before schema 1.7 kept as JSON text, read through the one loader (ValueError, which
    pydantic reports at its field, when it is not one)."""
    if not isinstance(raw, str):
        raise ValueError(f"expected JSON text, got {type(raw).__name__}")
    try:
        return parse_json(raw, "check outputs", "JSON text", strict=False)
    except HarnessInputError as e:
        raise ValueError(e.message) from None


class CheckOutputs(Strict):
    """What a cell keeps only for its checks and accuracy: made untimed, or on the side of the timed calls.
    Keyed by prompt index (for embeddings and rerank, the call's first document). Before schema 1.7 this was
    a map of JSON strings under "repeat:N"-style keys; such results are read into these fields."""

    repeat_texts: dict[int, str] = Field(default_factory=dict, description="text of the untimed repeat of the "
                                         "first measured call")
    first_outputs: dict[int, JsonValue] = Field(default_factory=dict, description="the first measured call's "
                                                "output for the fp16 comparison (vectors, scores, thumbnails)")
    repeat_outputs: dict[int, JsonValue] = Field(default_factory=dict, description="the same call repeated untimed")
    f32_ids: dict[int, list[int]] = Field(default_factory=dict, description="generated ids of the f32 "
                                          "validation pass (harness.plan.validation)")
    f32_error: str | None = Field(None, description="why the f32 validation pass could not run")
    f32_prompt_ids: dict[int, list[int]] = Field(default_factory=dict, description="the prompt ids the f32 pass's "
                                                 "pipeline was fed, as its tokenizer encodes them; since 1.10")
    f32_input_tokens: dict[int, int] = Field(default_factory=dict, description="the prompt tokens the f32 pass's "
                                             "pipeline counted itself (PerfMetrics); since 1.10")
    transformers: TransformersReference | None = Field(None, description="the transformers reference of a plain "
                                                       "greedy cell's f32 outputs; since 1.10")
    tokenizer_parity: TokenizerParity | None = None
    serving_errors: ServingErrors | None = None
    server_metrics_delta: dict[str, float] = Field(default_factory=dict, description="the server's /metrics "
                                                   "counters over the load (harness serve)")
    load_timeline: LoadTimeline | None = Field(None, description="serving: /metrics scraped during the load and "
                                               "the failed requests' times; since 1.9")

    @model_validator(mode="before")
    @classmethod
    def _before_1_7(cls, data: Any) -> Any:
        if not isinstance(data, dict) or all(k in cls.model_fields for k in data):
            return data
        out: dict[str, Any] = {}
        for key, raw in data.items():
            head, _, index = str(key).rpartition(":")
            if key in ("tokenizer_parity", "serving_errors", "server_metrics_delta"):
                out[key] = _old_json(raw)
            elif key == "f32_error":
                out[key] = raw
            elif head == "repeat":
                out.setdefault("repeat_texts", {})[int(index)] = raw
            elif head == "f32":
                out.setdefault("f32_ids", {})[int(index)] = _old_json(raw)
            elif head.endswith("_repeat"):
                out.setdefault("repeat_outputs", {})[int(index)] = _old_json(raw)
            elif head:
                out.setdefault("first_outputs", {})[int(index)] = _old_json(raw)
        return out

    def merged(self, other: CheckOutputs) -> CheckOutputs:
        """Both sets of outputs; where both have an entry, this one's stands."""
        update: dict[str, Any] = {}
        for name in type(self).model_fields:
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, dict):
                update[name] = {**theirs, **mine}
            elif mine is None:
                update[name] = theirs
        return self.model_copy(update=update)


class RatioFigure(Strict):
    """One metric of a cell against its reference side: candidate / reference over paired calls."""

    metric: str
    ratio: float = Field(description="geometric mean of the paired ratios candidate / reference")
    ci_low: float | None = Field(description="95% interval of the ratio; with 2+ process pairs it counts the "
                                 "process pairs' own offsets (cluster-robust over process pairs, Student-t), with one "
                                 "only the call-to-call noise; None with fewer than 2 call pairs")
    ci_high: float | None
    call_pairs: int = Field(description="paired calls (one candidate and one reference call each)")
    process_pairs: int = Field(description="pairs of worker processes the calls came from")
    higher_is_better: bool = Field(description="the metric's direction: a ratio above 1 is better when true")


class ReferenceRatios(Strict):
    """A cell measured against the suite's reference side in the same run (CellSpec.reference_side)."""

    label: str = Field(description="the reference side's name, which names its ratio series in the history")
    description: str = Field(description="what the reference side changes (SideSpec.label())")
    runtime_versions: dict[str, str | None] = Field(
        default_factory=dict, description="stack versions the reference side's worker imported")
    ratios: list[RatioFigure] = Field(default_factory=list)
    sliced: bool = Field(False, description="the call pairs ran in slices (ReferenceSide.slice_ms; results before 1.13 "
                         "ran them one after the other)")
    summaries: dict[str, Summary] = Field(default_factory=dict, description="the reference side's own values per "
                                          "metric")

    def figure(self, metric: str) -> RatioFigure | None:
        return next((f for f in self.ratios if f.metric == metric), None)


class CellResult(Strict):
    key: str
    spec: CellSpec
    status: CellStatus
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    wall_s: float | None = None
    samples: list[Sample] = Field(default_factory=list)
    batches: list[BatchRecord] = Field(default_factory=list, description="concurrent batches (continuous batching)")
    cell_values: dict[str, float] = Field(
        default_factory=dict, description="per-cell measurements (load time, memory, size on disk)"
    )
    summaries: dict[str, Summary] = Field(default_factory=dict)
    checks: list[CheckResult] = Field(default_factory=list)
    check_outputs: CheckOutputs = Field(default_factory=CheckOutputs)
    model_dir: str | None = None
    preparation: list[str] = Field(default_factory=list, description="what preparing the cell's models decided "
                                   "(the file read, the int4 group size that fits, ...)")
    notes: list[str] = Field(default_factory=list)
    reference: list[ReferenceRecord] = Field(
        default_factory=list, description="the bare reference loop's calls, when the cell has fidelity_check")
    reference_error: str | None = Field(None, description="why the bare reference loop gave no calls")
    runtime_versions: dict[str, str | None] = Field(
        default_factory=dict, description="stack versions the cell's measuring worker imported")
    node: NodeIdentity | None = Field(None, description="cluster runs: the node the cell ran on")
    server: ServerInfo | None = Field(None, description="serving: what the server under load said about itself; "
                                      "since 1.9")
    slo_search: SloSearch | None = Field(None, description="serving with slo_search: the rates tried and the "
                                         "highest within the SLO; since 1.9")
    vs_reference: ReferenceRatios | None = Field(None, description="the cell against its reference side "
                                                 "(spec.reference_side), measured interleaved in the same run")
    host_state: HostState | None = Field(None, description="what else ran on the host while the cell's measuring "
                                         "processes ran (harness/core/host_state.py); since 1.12")


# ---------------------------------------------------------------- the run


class DeviceInfo(Strict):
    name: str
    full_name: str | None = None
    properties: dict[str, str] = Field(default_factory=dict)


HostWarningKind = Literal["other_cpu", "load", "cpu_pressure", "steal", "throttle", "memory", "swap", "governor",
                          "turbo", "smt", "battery"]
# what other work does to the host while it measures; the other kinds are how the host is set up
BUSY_KINDS: frozenset[str] = frozenset({"other_cpu", "load", "cpu_pressure", "steal", "throttle", "memory", "swap"})


class HostWarning(Strict):
    """One thing about the host that makes measurements move (harness/core/host_state.py)."""

    kind: HostWarningKind
    message: str = Field(description="one line, with the figures that tripped it")

    @property
    def busy(self) -> bool:
        return self.kind in BUSY_KINDS


class BusyProcess(Strict):
    name: str
    pid: int
    cpu_pct: float = Field(description="CPU it used over the window, % of one core (as top shows it)")


class HostLoad(Strict):
    """How busy the host was while something was measured: the part of a HostState a bandwidth reading keeps."""

    other_cpu_pct: float | None = Field(None, description="CPU of other processes, % of all logical cores")
    load_avg_1m: float | None = None
    busy: bool = Field(description="the host state's warnings said busy (HostState.busy)")


class HostState(Strict):
    """What made numbers move on the host while it measured (a quiet-host check, after pyperf's `system show`);
    every reading is None where the host does not expose it (containers and VMs hide much of /sys). Since 1.12."""

    measured_at: str
    window_s: float = Field(description="the window other processes' CPU, steal and swapping were measured over")
    own_work: bool = Field(False, description="taken over the harness's own measuring work (a cell's processes, a "
                           "bandwidth measurement): the load average and CPU pressure count that work, so they are "
                           "recorded but not judged")
    logical_cores: int | None = None
    other_cpu_pct: float | None = Field(None, description="CPU used by processes other than the harness's own "
                                        "(its measuring workers included), % of all logical cores")
    steal_pct: float | None = Field(None, description="CPU the hypervisor gave to other guests, % of all cores")
    busy_processes: list[BusyProcess] = Field(default_factory=list, description="the busiest other processes")
    load_avg_1m: float | None = None
    load_avg_5m: float | None = None
    cpu_pressure_pct: float | None = Field(None, description="/proc/pressure/cpu some avg10: % of time a task waited "
                                           "for a CPU")
    cpu_mhz: float | None = Field(None, description="current CPU clock (psutil), MHz")
    cpu_governor: str | None = Field(None, description="cpufreq scaling governor(s), comma-separated when CPUs differ")
    cpu_freq_driver: str | None = None
    turbo: bool | None = Field(None, description="turbo / boost on (intel_pstate no_turbo, cpufreq boost)")
    smt: str | None = Field(None, description="/sys/devices/system/cpu/smt/control: on, off, notsupported, ...")
    throttle_count: int | None = Field(None, description="thermal throttle events since boot, summed over CPUs")
    throttled: int | None = Field(None, description="thermal throttle events during the window")
    memory_total_mb: float | None = None
    memory_available_mb: float | None = None
    memory_pressure_pct: float | None = Field(None, description="/proc/pressure/memory some avg10: % of time a task "
                                              "stalled on memory")
    swap_used_mb: float | None = None
    swapped_mb: float | None = Field(None, description="swapped in and out during the window, MiB")
    on_battery: bool | None = None
    warnings: list[HostWarning] = Field(default_factory=list, description="what the thresholds of "
                                        "harness/core/host_state.py made of these readings when they were taken")

    @property
    def busy(self) -> bool:
        """Other work disturbed the measurement (a warning of a BUSY_KINDS kind)."""
        return any(w.busy for w in self.warnings)

    def load(self) -> HostLoad:
        return HostLoad(other_cpu_pct=self.other_cpu_pct, load_avg_1m=self.load_avg_1m, busy=self.busy)


class BandwidthReading(Strict):
    """One measurement of a host's memory bandwidth: a full one (triad and copy, a few seconds) or a run's short
    check (triad only, a few passes)."""

    kind: Literal["full", "check"]
    triad_gbs: float = Field(description="best triad of its repetitions")
    triad_median_gbs: float = Field(description="median triad of its repetitions")
    copy_gbs: float | None = Field(None, description="best copy of its repetitions (full measurements only)")
    seconds: float = Field(description="wall time it took, allocating the arrays included")
    measured_at: str
    load: HostLoad | None = Field(None, description="how busy the host was while it measured (None: not recorded, "
                                  "readings before 1.12)")


class MemoryBandwidth(Strict):
    """The host's memory bandwidth from a STREAM-style run over arrays far larger than the last-level cache
    (harness/analyze/roofline.py); decimal GB/s (10^9 bytes), the bytes STREAM counts (triad 24, copy 16 per element).
    Other work on the host lowers a measurement, never raises it, so the figure is the best of the host's
    measurements; every run adds a short one (`this_run`)."""

    triad_gbs: float = Field(description="best triad over the host's measurements (STREAM's convention: the best "
                             "repetition)")
    copy_gbs: float | None = Field(None, description="best copy a = b, for context (absent: no full measurement "
                                   "kept; results before 1.11 wrote 0.0 then)")
    triad_median_gbs: float = Field(description="median triad over the repetitions of the best measurement")
    array_mb: float = Field(description="size of each of the three arrays, MiB")
    threads: int
    seconds: float = Field(description="wall time of the measurement (since 1.10: this run's, 0 when it made none; "
                           "since 1.12 with its re-measurements)")
    measured_at: str = Field(description="when the measurement giving triad_gbs was made")
    fingerprint: str = Field(description="the host fingerprint it is cached under (harness.core.host.fingerprint)")
    cached: bool = Field(False, description="triad_gbs comes from an earlier measurement, read from the cache, "
                         "not from this run's")
    method: str = Field(description="how it was measured, in words")
    measurements: int = Field(1, description="how many measurements of this host triad_gbs is the best of; since 1.10")
    this_run: BandwidthReading | None = Field(
        None, description="the measurement this run made (None: none); far below triad_gbs, the host was busy with "
        "other work when the run started; since 1.10")
    best: BandwidthReading | None = Field(
        None, description="the reading triad_gbs is: its kind, when, and how busy the host was then (its load busy: "
        "no reading of this host was taken on a quiet host yet, so the figure is likely low); since 1.12")
    remeasured: list[BandwidthReading] = Field(
        default_factory=list, description="readings this run made again because its first one was implausible "
        "(far below the host's best, or taken on a busy host with no best to compare to); since 1.12")


class HostInfo(Strict):
    hostname: str
    os: str
    python: str
    cpu_model: str | None
    cpu_flags: list[str]
    physical_cores: int | None
    logical_cores: int | None
    memory_total_mb: float
    memory_bandwidth: MemoryBandwidth | None = Field(
        None, description="measured memory bandwidth of the host (None: not measured)")


class ServerInfo(Strict):
    """What a server under load said about itself (serving cells); every field is the server's own answer,
    None where it gave none."""

    endpoint: str = Field(description="the base URL the load went to (no credentials, query or fragment)")
    served_model: str = Field(description="the `model` the requests named")
    models: list[str] = Field(default_factory=list, description="model ids the server listed (/v3/models)")
    server_header: str | None = Field(None, description="the HTTP `server` header of its responses")
    name: str | None = Field(None, description="server name from its KServe metadata (GET /v2)")
    version: str | None = Field(None, description="server version from its KServe metadata (GET /v2)")
    model_versions: list[str] = Field(default_factory=list, description="OVMS /v1/config: the served model's "
                                      "versions and their state")
    tokenizer: str = Field(description="where prompt token counts came from: `model` (the suite's model, "
                           "prepared locally), a tokenizer folder or name, or `usage` (the server's counts)")


class SloProbe(Strict):
    """One load of an SLO search at one open-loop rate."""

    rate_rps: float
    requests: int = Field(description="requests sent in the measured load")
    good: int = Field(description="requests that completed and met every per-request limit of the suite's slo")
    attainment_pct: float = Field(description="100 × good / requests")
    passed: bool


class SloSearch(Strict):
    """The highest open-loop rate whose load met the SLO, found by bisection on the rate (serving, slo_search)."""

    limits: dict[str, float] = Field(description="the per-request limits (metric tag -> max ms)")
    target_pct: float = Field(description="share of requests that must meet every limit for a rate to pass")
    probes: list[SloProbe] = Field(description="the loads in the order they ran; a probe's samples and batch have "
                                   "its index as their iteration")
    max_rate_rps: float | None = Field(description="highest rate that passed below the lowest that failed")
    first_failing_rps: float | None = Field(description="lowest rate that failed")
    chosen_probe: int | None = Field(description="the probe at max_rate_rps: its requests are the cell's measured "
                                     "samples; the other probes' are kept as warm-up")


class NodeIdentity(Strict):
    """A cluster node as it described itself before running cells: who it is, what it has, where its models are."""

    name: str = Field(description="the node's name in reports and in --each-node keys: its `host` label, else "
                      "its hostname (with the Ray node id's head when several nodes share a hostname)")
    node_id: str
    address: str
    labels: dict[str, str] = Field(default_factory=dict, description="the operator's Ray node labels")
    cpus: float = Field(description="Ray CPU resource; a cell takes all of it, so one cell runs on a node at a time")
    host: HostInfo
    devices: list[DeviceInfo] = Field(default_factory=list)
    versions: dict[str, str | None] = Field(default_factory=dict)
    harness_commit: str | None = None
    cache: str = Field(description="where the node prepares and reads models: 'node-local PATH' or 'shared PATH'")


class ClusterRecord(Strict):
    """How a run used a Ray cluster."""

    address: str
    mode: Literal["spread", "each-node"]
    node_filter: dict[str, str] = Field(default_factory=dict, description="--nodes label=value")
    shared_cache: str | None = None
    nodes: list[NodeIdentity] = Field(default_factory=list, description="the nodes cells could run on")
    left_out: dict[str, str] = Field(default_factory=dict, description="node -> why it ran no cell")


class EnvironmentRecord(Strict):
    """A Python environment cells ran in: what was asked, what was installed, what it imports."""

    name: str
    python: str
    requested: list[str] = Field(default_factory=list, description="the suite's pinned packages")
    resolved: list[str] = Field(default_factory=list, description="the package set the resolver installed")
    digest: str | None = Field(None, description="content address of the build (None: an existing interpreter)")
    versions: dict[str, str | None] = Field(default_factory=dict, description="versions the interpreter imports")
    build_s: float | None = Field(None, description="build wall time when it was built by this run")


class DroppedGate(Strict):
    """A gate of the suite that this run did not check: it selects cells of the suite as written, but the
    run's overrides (--model, --device, --precision, --env, --set, HARNESS_SET) removed every one of them."""

    index: int = Field(description="position in the suite file's gates")
    gate: Gate
    where: dict[str, PropertyValue | list[PropertyValue]] = Field(default_factory=dict)
    overrides: list[str] = Field(description="the overrides that removed its cells, as given (each alone, or "
                                 "only all of them together: see `together`)")
    together: bool = Field(False, description="no one of the overrides alone removed its cells, they together did")

    def where_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.where.items())

    def removed_by(self, fmt: Callable[[str], str] = str) -> str:
        """'--model X', 'each of --model X, --precision int8' or '--device GPU together with --precision int8'."""
        shown = [fmt(o) for o in self.overrides]
        if self.together:
            return " together with ".join(shown)
        return shown[0] if len(shown) == 1 else "each of " + ", ".join(shown)

    def describe(self) -> str:
        return f"gates[{self.index}] {self.gate.describe()} where {self.where_text()}: no cell left by {self.removed_by()}"


class RunMetadata(Strict):
    run_id: str
    suite_name: str
    suite_file: str | None
    suite_sha256: str | None
    started_at: str
    finished_at: str | None = None
    resumed_at: list[str] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list)
    host: HostInfo
    versions: dict[str, str | None]
    harness_commit: str | None
    devices: list[DeviceInfo]
    compare_thresholds: dict[str, float] = Field(
        default_factory=dict, description="the suite's minimum effects per metric for `harness compare`")
    environments: list[EnvironmentRecord] = Field(
        default_factory=list, description="environments the cells ran in (none: the harness's own interpreter)")
    cluster: ClusterRecord | None = Field(None, description="cluster runs: the cluster, mode and nodes")
    overrides: list[str] = Field(default_factory=list, description="changes made to the suite as written, in "
                                 "the order applied (--model, --device, --precision, --env, HARNESS_SET and --set "
                                 "items), as given")
    dropped_gates: list[DroppedGate] = Field(default_factory=list, description="gates of the suite that the "
                                             "overrides left without a cell, so not checked")
    host_state_before: HostState | None = Field(None, description="the host before the first cell (a resumed run: "
                                                "before it was resumed last); since 1.12")


class RunResults(Strict):
    schema_version: str = SCHEMA_VERSION
    metadata: RunMetadata
    cells: list[CellResult]
    run_checks: list[CheckResult] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


CellResult.model_rebuild()  # its `node` names NodeIdentity, defined with the run's records below it


def measured_on(cell: CellResult, meta: RunMetadata) -> HostInfo:
    """The host whose hardware a cell's figures describe: its cluster node's, else the run's."""
    return cell.node.host if cell.node is not None else meta.host
