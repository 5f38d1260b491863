"""Checks and sizes of an OpenVINO IR directory."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.errors import ModelPreparationError
from harness.models.cache import MiB, dir_size

MODEL_XML = "openvino_model.xml"
MODEL_BIN = "openvino_model.bin"


def validate_ir_dir(path: Path) -> None:
    """Raise ModelPreparationError unless `path` holds a parseable IR whose weights file is complete."""
    xml, bin_ = Path(path) / MODEL_XML, Path(path) / MODEL_BIN
    for f in (xml, bin_):
        if not f.is_file():
            raise ModelPreparationError(f"IR file '{f}' is missing")
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as e:
        raise ModelPreparationError(f"IR model file '{xml}' does not parse: {e}") from None
    needed = 0
    for layer in root.iter("layer"):
        data = layer.find("data")
        if layer.get("type") == "Const" and data is not None and "offset" in data.attrib:
            needed = max(needed, int(data.get("offset", 0)) + int(data.get("size", 0)))
    have = bin_.stat().st_size
    if have < needed:
        raise ModelPreparationError(
            f"IR weights file '{bin_}' is truncated: {have} bytes, the IR needs {needed}")


def ir_size_mb(path: Path) -> float:
    """openvino_model.xml + .bin in MiB."""
    return sum((Path(path) / f).stat().st_size for f in (MODEL_XML, MODEL_BIN)) / MiB


def total_size_mb(path: Path) -> float:
    return dir_size(Path(path)) / MiB
