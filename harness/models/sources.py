"""What a model source string names, and where its files are on this machine."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.errors import ModelPreparationError
from harness.models import synthetic
from harness.models.ir import MODEL_XML, model_irs

SourceKind = Literal["synthetic", "hf_dir", "hf_id", "ir_dir"]
SYNTHETIC_PREFIX = "synthetic:"
HF_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
DOWNLOAD_TIMEOUT_S = 10


@dataclass(frozen=True)
class ResolvedSource:
    kind: SourceKind
    path: Path  # a local directory with the model files
    slug: str  # short, filesystem-safe name for cache entries


def classify_source(source: str) -> SourceKind:
    """Kind of a source string, without building or downloading anything."""
    if source.startswith(SYNTHETIC_PREFIX):
        synthetic._spec(source.removeprefix(SYNTHETIC_PREFIX))  # unknown name -> error
        return "synthetic"
    if not source.strip():  # Path("") would mean the current directory
        raise ModelPreparationError(f"model path not found: {source!r}")
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelPreparationError(f"model path '{source}' is a file; expected a model directory")
        if model_irs(path):
            return "ir_dir"  # checked first: optimum's IR output has a config.json too
        if (path / "config.json").is_file() or (path / "model_index.json").is_file():
            return "hf_dir"
        raise ModelPreparationError(
            f"directory '{source}' is neither a Hugging Face model (no config.json or model_index.json) "
            f"nor an OpenVINO IR (no {MODEL_XML} or other openvino*model.xml)")
    if HF_ID.fullmatch(source) and not source.startswith("."):
        return "hf_id"
    raise ModelPreparationError(f"model path not found: {source!r}")


def resolve_source(source: str, cache_dir: Path, log: Callable[[str], None]) -> ResolvedSource:
    """Local directory for a source: builds synthetic models, finds or fetches Hub models."""
    kind = classify_source(source)
    if kind == "synthetic":
        name = source.removeprefix(SYNTHETIC_PREFIX)
        return ResolvedSource(kind, synthetic.build_synthetic(name, cache_dir, log=log), name)
    if kind == "hf_id":
        return ResolvedSource(kind, _hub_snapshot(source, log), source.replace("/", "--"))
    path = Path(source).expanduser().resolve()
    return ResolvedSource(kind, path, re.sub(r"[^\w.-]", "_", path.name) or "model")


def _hub_snapshot(repo_id: str, log: Callable[[str], None]) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here means "not cached", next try the network
        pass
    # huggingface_hub reads HF_HUB_OFFLINE once at import; read it here so a late setting counts.
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        reason = "HF_HUB_OFFLINE is set"
    else:
        log(f"downloading {repo_id} from the Hugging Face Hub ...")
        try:
            return Path(snapshot_download(repo_id, etag_timeout=DOWNLOAD_TIMEOUT_S))
        except Exception as e:  # noqa: BLE001 - reported as one line below
            first = next((line for line in str(e).splitlines() if line.strip()), "")
            reason = f"{type(e).__name__}: {first.strip()}"[:200]
    raise ModelPreparationError(
        f"model id '{repo_id}' is not in the local Hugging Face cache and could not be downloaded "
        f"(no network?): {reason}")
