"""Expanding a suite into its matrix of cells: every combination of its axes, less `exclude`, with gates and keys."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.core.errors import HarnessInputError
from harness.core.input_files import MAX_PROMPT_FILE_BYTES, json_objects, lines, read_text
from harness.core.schema import (
    REMOTE_DEVICE,
    CellSpec,
    Gate,
    GenerationSpec,
    ModelRef,
    Precision,
    PromptSpec,
    PropertyValue,
    ReferenceSide,
    ScenarioSpec,
)
from harness.kinds import kind_spec
from harness.models.sources import is_gguf_source
from harness.plan import validation
from harness.plan.cell_keys import cell_key
from harness.plan.sides import refused_runtime, runtime_refusal
from harness.plan.suite_file import format_loc
from harness.plan.suite_model import Suite, SuiteGeneration


def _load_prompt_file(suite_file: Path, rel: str) -> list[str]:
    path = (suite_file.parent / rel).resolve()
    if not path.is_file():
        raise HarnessInputError(str(suite_file), "prompts.file", rel, "prompt file not found")
    text = read_text(path, "prompt file", MAX_PROMPT_FILE_BYTES)
    texts: list[str] = []
    if path.suffix == ".jsonl":
        for n, obj in json_objects(path, lines(text), "a JSON object with 'prompt'"):
            prompt = obj.get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise HarnessInputError(str(path), f"line {n}.prompt", str(prompt)[:60], "a prompt is non-empty text")
            texts.append(prompt)
    else:
        texts = [line for line in text.splitlines() if line.strip()]
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


def _reference_side(suite: Suite, suite_file: Path) -> ReferenceSide | None:
    """The suite's reference side as cells carry it: a model folder relative to the suite file made absolute."""
    if suite.reference_side is None:
        return None
    side = suite.reference_side.spec()
    if side.model is not None:
        side.model = _source(suite_file, side.model)
    return ReferenceSide(label=suite.reference_side.series_label(), side=side,
                         process_pairs=suite.reference_side.process_pairs, blocks=suite.reference_side.blocks,
                         slice_ms=suite.reference_side.slice_ms)


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
    said: set[str] = set()  # warnings a kind's cell rules gave once for the whole suite
    reference = _reference_side(suite, suite_file)
    # the reference side's environment is measured beside every cell, not as cells of its own
    environments: list[str | None] = [e.name for e in suite.environments
                                      if reference is None or e.name != reference.side.env] or [None]
    remote = suite.server != "local"
    compressions = suite.compression
    precision: Precision
    for model, precision, device, scenario, environment, runtime, compression in itertools.product(
            suite.models, suite.precisions, suite.devices, suite.scenarios, environments, suite.runtimes, compressions):
        if scenario.models is not None and model.name not in scenario.models:
            continue
        if precision == "gguf" and not is_gguf_source(model.source):
            continue  # the GGUF route: only a model that is a GGUF file has it
        if precision != "int4" and compression is not compressions[0]:
            continue  # only int4 weights have compression settings: one cell for the others
        if refused_runtime(runtime, precision, scenario.kind):
            continue  # a peer runtime runs the GGUF file as it is, for the kinds that name it
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
            raise HarnessInputError(str(suite_file), f"scenarios.{scenario.name}.generation.{format_loc(tuple(err['loc']))}",
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
                    prompts=prompts, compression=compression, runtime=runtime,
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
                    # a remote server runs what it runs: nothing here to pin a reference beside
                    reference_side=None if precision == "served" else reference,
                )
                if _excluded(spec.axes(), suite.exclude):
                    continue
                if spec.reference_side is not None and (runtime_refusal(spec, spec.reference_side.side)
                                                        or spec.runtime == spec.reference_side.side.runtime):
                    # a peer runtime's reference only beside the cells it can run, and not beside its own cells
                    spec.reference_side = None
                spec.gates = [Gate(metric=g.metric, stat=g.stat, min=g.min, max=g.max) for g in suite.gates
                              if not g.where or _excluded(spec.axes(), [g.where])]
                spec.key = cell_key(spec, plabel, prop_names, compression_axis=len(compressions) > 1)
                spec = kind_spec(scenario.kind).cell_checked(spec, suite_file, said)
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
        raise HarnessInputError(str(suite_file), "exclude" if suite.exclude else None, None,
                                "the suite expands to no cell" + ("" if suite.exclude else " (an empty axis?)"))
    return validation.unread_passes_dropped(cells)


def _fmt_where(where: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items())
