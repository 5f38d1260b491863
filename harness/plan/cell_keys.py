"""Cell keys: the stable, readable name of each cell, under which results and history are kept."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from harness.core.schema import DEFAULT_RUNTIME, CellSpec, PropertyValue


def model_key_part(name: str) -> str:
    """A model's name as its cells' keys carry it: a model may be named as its folder is ('Llama 3.2 1B+LoRA'),
    a key stays one path segment without spaces or punctuation (anything but letters and digits of any script,
    '_', '.' and '-' becomes '_'; a name that was allowed before names were free keeps its keys)."""
    return re.sub(r"[^\w.-]", "_", name)


def _fmt(v: PropertyValue) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def cell_key(spec: CellSpec, prompt_label: str, prop_names: list[str], compression_axis: bool = False) -> str:
    """Stable, human-readable key: model/precision/device/scenario[params]/prompts-out[/props][/wc=LABEL]
    [/runtime=NAME]; a remote server's cells have server=HOST:PORT in place of precision/device. `wc=` (the int4
    compression setting) only where the suite lists several, `runtime=` only where it is not OpenVINO."""
    scen = spec.scenario.name
    if spec.scenario.params:
        scen += "[" + ",".join(f"{k}={_fmt(v)}" for k, v in sorted(spec.scenario.params.items())) + "]"
    # a remote server's cell is named by its endpoint: the precision and device are the server's, not ours
    where = [f"server={urlsplit(spec.server or '').netloc}"] if spec.remote else [spec.precision, spec.device]
    parts = [model_key_part(spec.model.name), *where, scen, f"{prompt_label}-out{spec.generation.max_new_tokens}"]
    if prop_names:
        parts.append(",".join(f"{k}={_fmt(spec.properties[k])}" for k in prop_names))
    if compression_axis and spec.precision == "int4":
        parts.append(f"wc={spec.compression.label()}")
    if spec.runtime != DEFAULT_RUNTIME:
        parts.append(f"runtime={spec.runtime}")
    if spec.environment is not None:
        parts.append(f"env={spec.environment}")
    if spec.host is not None:
        parts.append(f"host={spec.host}")
    return "/".join(parts)


def pinned_to(cell: CellSpec, host: str) -> CellSpec:
    """The cell on one named cluster node (--each-node): the host becomes the last axis of its key."""
    return cell.model_copy(update={"host": host, "key": f"{cell.key}/host={host}"})
