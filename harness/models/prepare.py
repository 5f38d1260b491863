"""Any model source -> a verified OpenVINO IR directory at fp16/int8/int4, cached."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ModelPreparationError
from harness.host import package_versions
from harness.models import cache, synthetic
from harness.models.export import LOG_NAME, export_ir
from harness.models.ir import ir_size_mb, total_size_mb, validate_ir_dir
from harness.models.sources import ResolvedSource, SourceKind, classify_source, resolve_source
from harness.schema import CompressionSpec

__all__ = ["PreparedModel", "prepare_model", "classify_source", "validate_ir_dir", "PRECISIONS"]

# Bump whenever a change to the export command alters what gets built.
EXPORT_VERSION = 1
MANIFEST = "harness-manifest.json"
PRECISIONS = ("fp16", "int8", "int4")
EXPORT_LIBS = ("openvino", "optimum-intel", "optimum", "nncf", "transformers", "openvino-tokenizers")


@dataclass(frozen=True)
class PreparedModel:
    path: Path
    precision: str
    source: str
    source_kind: SourceKind
    cache_hit: bool  # found in the harness IR cache (False for a user IR dir used as is)
    export_s: float | None  # export wall time when the entry was built; None for a user IR dir
    size_mb: float  # openvino_model.xml + .bin, MiB
    total_size_mb: float  # whole directory, MiB


def prepare_model(
    source: str,
    precision: str,
    compression: CompressionSpec,
    cache_dir: Path,
    log: Callable[[str], None] | None = None,
) -> PreparedModel:
    """IR directory for `source` at `precision`: used as is, found in the cache or exported."""
    log = log or (lambda _msg: None)
    if precision not in PRECISIONS:
        raise ModelPreparationError(f"unknown precision '{precision}' (known: {', '.join(PRECISIONS)})")
    src = resolve_source(source, Path(cache_dir), log)
    if src.kind == "ir_dir":
        validate_ir_dir(src.path)
        log(f"using IR directory {src.path} as is")
        return _prepared(src.path, precision, source, src.kind, cache_hit=False, export_s=None)

    key = export_key(src, precision, compression)
    entry = Path(cache_dir) / "ir" / f"{src.slug}-{precision}-{cache.digest(key)}"
    with cache.entry_lock(entry, on_wait=lambda: log(f"waiting for another process preparing {entry.name} ...")):
        manifest = _verified_manifest(entry, log)
        if manifest is not None:
            log(f"cache hit: {src.slug} {precision} at {entry}")
            return _prepared(entry, precision, source, src.kind, cache_hit=True, export_s=manifest["export_s"])
        export_s = _build_entry(src, precision, compression, key, entry, log)
    return _prepared(entry, precision, source, src.kind, cache_hit=False, export_s=export_s)


def export_key(src: ResolvedSource, precision: str, compression: CompressionSpec) -> dict[str, Any]:
    """Everything an exported IR depends on."""
    return {
        "export": EXPORT_VERSION,
        # harness bookkeeping (build times and such) is not model content
        "content": cache.fingerprint_dir(src.path, exclude=frozenset({MANIFEST, synthetic.MARKER})),
        "precision": precision,
        # fp16 and int8 (per-channel) ignore the int4 options; keeping them out shares the entry.
        "compression": compression.model_dump() if precision == "int4" else None,
        "versions": package_versions(EXPORT_LIBS),
    }


def _verified_manifest(entry: Path, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The entry's manifest if every file checks out; a damaged entry is logged and deleted."""
    if not entry.exists():
        return None
    manifest = cache.read_json(entry / MANIFEST)
    problem: str | None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) or "export_s" not in manifest:
        problem = "no valid manifest"
    else:
        problem = cache.verify_manifest(entry, manifest["files"])
    if problem is None:
        return manifest
    log(f"cache entry {entry} is damaged ({problem}); rebuilding")
    shutil.rmtree(entry)
    return None


def _build_entry(src: ResolvedSource, precision: str, compression: CompressionSpec, key: dict[str, Any],
                 entry: Path, log: Callable[[str], None]) -> float:
    tmp = cache.new_temp_dir(entry)
    try:
        log(f"exporting {src.slug} to {precision} ...")
        start = time.perf_counter()
        try:
            export_ir(src.path, tmp, precision, compression)
        except ModelPreparationError as e:
            # the temp dir goes away; keep its log where the message can point to it
            failed_log = entry.parent / f"{entry.name}.failed.log"
            shutil.copyfile(tmp / LOG_NAME, failed_log)
            raise ModelPreparationError(f"{e} (full log: {failed_log})") from None
        export_s = round(time.perf_counter() - start, 3)
        validate_ir_dir(tmp)
        cache.write_json(tmp / MANIFEST, {
            "key": key, "source": str(src.path), "export_s": export_s,
            "files": cache.file_manifest(tmp, exclude=MANIFEST),
        })
        cache.publish(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"exported {src.slug} to {precision} in {export_s:.1f} s")
    return export_s


def _prepared(path: Path, precision: str, source: str, kind: SourceKind, cache_hit: bool,
              export_s: float | None) -> PreparedModel:
    return PreparedModel(path=path, precision=precision, source=source, source_kind=kind, cache_hit=cache_hit,
                         export_s=export_s, size_mb=round(ir_size_mb(path), 3),
                         total_size_mb=round(total_size_mb(path), 3))
