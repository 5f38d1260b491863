"""A serving cell's files, resolved and read once when the suite expands (the serving kind's `resolve_files`):
a bad trace, payload recording or tokenizer folder stops the run before any cell, naming the file and line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessInputError
from harness.core.schema import CellSpec
from harness.kinds.serving import ServingParams
from harness.load.exports import read_payloads
from harness.load.traces import read_trace


def resolve_serving_files(values: dict[str, Any], suite_file: Path) -> dict[str, Any]:
    """`trace`, `replay_payloads` and a `tokenizer` folder relative to the suite file; the files read once
    here, so a bad one stops the run before any cell (HarnessInputError naming the file and line)."""
    out = dict(values)
    for key in ("trace", "replay_payloads"):
        if out.get(key):
            path = Path(str(out[key])).expanduser()
            out[key] = str(path if path.is_absolute() else (suite_file.parent / path).resolve())
    tokenizer = out.get("tokenizer")
    if tokenizer not in (None, "model", "usage"):
        given = Path(str(tokenizer)).expanduser()
        folder = given if given.is_absolute() else suite_file.parent / given
        if folder.is_dir():
            out["tokenizer"] = str(folder.resolve())
        elif folder.exists():
            raise HarnessInputError(str(suite_file), "tokenizer", tokenizer,
                                    f"{folder.resolve()} is a file; a tokenizer is a folder")
        elif _path_like(str(tokenizer)):  # a Hugging Face name is `name` or `org/name`, never these
            raise HarnessInputError(str(suite_file), "tokenizer", tokenizer,
                                    f"no tokenizer folder at {folder.resolve()}")
    if out.get("trace"):
        for note in read_trace(out["trace"], out.get("trace_format", "auto")).notes:
            logging.getLogger("harness.plan.suite").warning("warning: %s", note)  # stderr, as the run starts
    if out.get("replay_payloads"):
        api = out.get("api", ServingParams.model_fields["api"].default)
        for n, rec in enumerate(read_payloads(out["replay_payloads"]), 1):
            if rec.api != api:  # paths, checks and token totals follow the cell's api
                raise HarnessInputError(out["replay_payloads"], f"record {n}.api", rec.api,
                                        f"the replaying scenario's api is {api}")
    return out


def _path_like(name: str) -> bool:
    """A tokenizer value that can only be a path: absolute, ~, ./ or ../, a trailing slash, or more than one /."""
    return name.startswith(("/", "~", "./", "../", ".\\")) or name.endswith(("/", "\\")) or name.count("/") > 1


def serving_cell_rules(cell: CellSpec, suite_file: Path, said: set[str]) -> CellSpec:
    """An SLO search needs the suite's `slo:` and runs one search per cell (its loads are the search's probes, so
    the suite's `processes` go to the other cells); a remote server's prefix caching is its own setting."""
    p = ServingParams.of(cell)
    name = cell.scenario.name
    if p.slo_search:
        if not cell.slo:
            raise HarnessInputError(str(suite_file), f"scenarios.{name}.slo_search", True,
                                    "needs the suite's `slo:` per-request limits, e.g. {ttft_ms: 1000}")
        if cell.processes > 1:
            if name not in said:
                logging.getLogger("harness.plan.suite").warning(
                    "warning: scenarios.%s: slo_search runs one search per cell; processes: %d applies to the other "
                    "cells", name, cell.processes)
                said.add(name)
            cell = cell.model_copy(update={"processes": 1})
    if cell.remote and p.enable_prefix_caching is not None:
        raise HarnessInputError(str(suite_file), f"scenarios.{name}.enable_prefix_caching", p.enable_prefix_caching,
                                "configures harness serve (server: local); a running server has its own setting")
    return cell
