"""Checks and sizes of an OpenVINO IR directory."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.core.errors import ModelPreparationError
from harness.models.cache import MiB, dir_size

MODEL_XML = "openvino_model.xml"
_NOT_MODELS = ("openvino_tokenizer.xml", "openvino_detokenizer.xml")
# pipeline parts named without "model": SpeechT5's postnet and vocoder (text to speech)
_OTHER_PARTS = ("openvino_postnet.xml", "openvino_vocoder.xml")


def model_irs(path: Path) -> list[Path]:
    """The model IR files of a directory: openvino_model.xml, or the parts of a multi-model pipeline
    (openvino_language_model.xml, openvino_vision_embeddings_model.xml, openvino_encoder_model.xml, ...,
    and one level down for diffusion pipelines: unet/openvino_model.xml, ...). Tokenizers are not models."""
    path = Path(path)
    found = [f for pattern in ("openvino*model.xml", *_OTHER_PARTS, "*/openvino*model.xml")
             for f in sorted(path.glob(pattern)) if f.name not in _NOT_MODELS]
    return found


def _validate_one(xml: Path) -> None:
    bin_ = xml.with_suffix(".bin")
    if not bin_.is_file():
        raise ModelPreparationError(f"IR file '{bin_}' is missing")
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as e:
        raise ModelPreparationError(f"IR model file '{xml}' does not parse: {e}") from None
    layers = list(root.iter("layer"))
    kinds = {layer.get("type") for layer in layers}
    if not layers:
        raise ModelPreparationError(f"IR model file '{xml}' has no layers")
    for kind in ("Parameter", "Result"):
        if kind not in kinds:
            raise ModelPreparationError(f"IR model file '{xml}' has no {kind} layer (no "
                                        f"{'inputs' if kind == 'Parameter' else 'outputs'})")
    needed = 0
    for layer in layers:
        data = layer.find("data")
        if layer.get("type") == "Const" and data is not None and "offset" in data.attrib:
            try:
                needed = max(needed, int(data.get("offset", 0)) + int(data.get("size", 0)))
            except ValueError:
                raise ModelPreparationError(f"IR model file '{xml}': layer {layer.get('name')!r} has a "
                                            f"non-numeric offset or size") from None
    have = bin_.stat().st_size
    if have < needed:
        raise ModelPreparationError(
            f"IR weights file '{bin_}' is truncated: {have} bytes, the IR needs {needed}")


def validate_ir_dir(path: Path) -> None:
    """Raise ModelPreparationError unless `path` holds parseable IRs whose weights files are complete."""
    irs = model_irs(path)
    if not irs:
        raise ModelPreparationError(f"IR file '{Path(path) / MODEL_XML}' is missing (no openvino*model.xml in {path})")
    for xml in irs:
        _validate_one(xml)


def ir_size_mb(path: Path) -> float:
    """Every model IR of the directory (.xml + .bin) in MiB; tokenizers excluded."""
    return sum(f.stat().st_size + f.with_suffix(".bin").stat().st_size for f in model_irs(path)) / MiB


def total_size_mb(path: Path) -> float:
    return dir_size(Path(path)) / MiB
