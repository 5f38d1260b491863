"""Any model source -> a verified OpenVINO IR directory at fp16/int8/int4, cached."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.digest import digest
from harness.core.errors import ModelPreparationError
from harness.core.host import package_versions
from harness.core.input_files import MAX_MODEL_CONFIG_BYTES, load_json
from harness.core.metrics import ExportTime
from harness.core.schema import CompressionSpec
from harness.models import cache, synthetic
from harness.models.export import COMPRESSIBLE_TASKS, LOG_NAME, compress_ir, export_ir, export_task
from harness.models.gguf import read_info
from harness.models.ir import ir_size_mb, total_size_mb, validate_ir_dir
from harness.models.sources import ResolvedSource, SourceKind, classify_source, is_gguf_source, resolve_source
from harness.models.texts import CALIBRATION, text_of

__all__ = ["PreparedModel", "prepare_model", "classify_source", "validate_ir_dir", "PRECISIONS"]

# Bump whenever a change to the export command alters what gets built.
EXPORT_VERSION = 1
MANIFEST = "harness-manifest.json"
# "gguf": a GGUF source's own file and quantization, read by openvino-genai itself (no export)
PRECISIONS = ("fp16", "int8", "int4", "gguf")
GGUF = "gguf"
# int4 group sizes tried, largest first, when the asked one does not divide the model's channels
GROUP_SIZES = (256, 128, 64, 32, 16)
EXPORT_LIBS = ("openvino", "optimum-intel", "optimum", "nncf", "transformers", "openvino-tokenizers")


@dataclass(frozen=True)
class PreparedModel:
    path: Path
    precision: str
    source: str
    source_kind: SourceKind
    cache_hit: bool  # found in the harness IR cache (False for a user IR dir used as is)
    export_s: float | None  # export wall time when the entry was built; None for a user IR dir
    size_mb: float  # openvino_model.xml + .bin, MiB (a GGUF file: its size)
    total_size_mb: float  # whole directory, MiB
    notes: tuple[str, ...] = ()  # what preparing it decided (e.g. the int4 group size that fits)
    source_dir: Path | None = None  # the Hugging Face folder it was exported from (None: used as it is)


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
    if precision == GGUF and not is_gguf_source(source):
        # refused before anything is built, downloaded, converted or cut
        raise ModelPreparationError(f"precision gguf reads a GGUF file as it is; '{source}' is a "
                                    f"{classify_source(source)} source")
    src = resolve_source(source, Path(cache_dir), log, convert=precision != GGUF)
    if precision == GGUF:
        if src.gguf is None:  # a directory whose name ends in .gguf
            raise ModelPreparationError(f"precision gguf reads a GGUF file as it is; '{source}' is a {src.kind} source")
        # parsed here first: openvino-genai 2026.4.1 crashes (SIGSEGV) on a GGUF file cut short, the gguf package
        # refuses it in one line
        info = read_info(src.gguf, Path(cache_dir))
        log(f"using {src.gguf} as is (openvino-genai's own GGUF reader)")
        size = round(src.gguf.stat().st_size / 2**20, 3)
        return PreparedModel(path=src.gguf, precision=precision, source=source, source_kind=src.kind, cache_hit=True,
                             export_s=None, size_mb=size, total_size_mb=size,
                             notes=(f"{src.gguf.name} read by openvino-genai's GGUF reader", info.describe_tensors()))
    if src.kind == "ir_dir":
        validate_ir_dir(src.path)
        log(f"using IR directory {src.path} as is")
        return _prepared(src.path, precision, source, src.kind, cache_hit=False, export_s=None)

    compression, notes = fitted_compression(src.path, precision, compression)
    return dataclasses.replace(_cached_ir(src, source, precision, compression, Path(cache_dir), log, notes),
                               source_dir=src.path)


def _cached_ir(src: ResolvedSource, source: str, precision: str, compression: CompressionSpec, cache_dir: Path,
               log: Callable[[str], None], notes: tuple[str, ...] = ()) -> PreparedModel:
    """The cache entry of `src` at `precision`, built when missing: a text-generation model's int8 / int4 from
    its fp16 entry (built first when missing), anything else by optimum-cli from the source."""
    fp16 = None
    if precision != "fp16" and export_task(src.path) in COMPRESSIBLE_TASKS:
        fp16 = _cached_ir(src, source, "fp16", compression, cache_dir, log)
        key = compressed_key(fp16.path, precision, compression)
        notes = (*notes, f"{precision} weights compressed by NNCF from the fp16 IR")
    else:
        key = export_key(src, precision, compression)
    entry = cache_dir / "ir" / f"{src.slug}-{precision}-{digest(key)}"
    with cache.entry_lock(entry, on_wait=lambda: log(f"waiting for another process preparing {entry.name} ...")):
        manifest = _verified_manifest(entry, log)
        if manifest is not None:
            log(f"cache hit: {src.slug} {precision} at {entry}")
            return _prepared(entry, precision, source, src.kind, cache_hit=True, export_s=manifest[ExportTime.tag],
                             notes=notes)
        export_s = _build_entry(src, precision, compression, key, entry, log, fp16.path if fp16 else None)
    return _prepared(entry, precision, source, src.kind, cache_hit=False, export_s=export_s, notes=notes)


def model_channels(hf_dir: Path) -> dict[str, int]:
    """The input-channel counts of a Hugging Face text model's weight matrices, from its config.json: what an
    int4 group size must divide."""
    path = hf_dir / "config.json"
    config = load_json(path, "model file", MAX_MODEL_CONFIG_BYTES) if path.is_file() else {}
    config = config.get("text_config", config) if isinstance(config.get("text_config"), dict) else config

    def count(name: str) -> int | None:  # a channel count; anything else (a string, a bool, 10**30) is unknown
        v = config.get(name)
        return v if type(v) is int and 0 < v < 2**31 else None

    out: dict[str, int] = {}
    for name in ("hidden_size", "intermediate_size"):
        if (n := count(name)) is not None:
            out[name] = n
    heads, head_dim = count("num_attention_heads"), count("head_dim")
    if heads is not None and head_dim is not None:
        out["attention width"] = heads * head_dim
    return out


def fitted_compression(hf_dir: Path, precision: str, compression: CompressionSpec
                       ) -> tuple[CompressionSpec, tuple[str, ...]]:
    """The int4 options with a group size that divides every channel count of the model (NNCF refuses the export
    otherwise): the asked one when it fits, else the largest that does, else per-channel; and a note saying so."""
    if precision != "int4" or compression.group_size == -1:
        return compression, ()
    channels = model_channels(hf_dir)
    asked = compression.group_size
    if all(n % asked == 0 for n in channels.values()):
        return compression, (f"int4 group size {asked}",)
    fits = next((g for g in GROUP_SIZES if g < asked and all(n % g == 0 for n in channels.values())), -1)
    why = ", ".join(f"{k} {n}" for k, n in channels.items() if n % asked)
    used = f"group size {fits}" if fits != -1 else "per-channel groups"
    return (compression.model_copy(update={"group_size": fits}),
            (f"int4 {used}: the asked group size {asked} does not divide {why}",))


def export_key(src: ResolvedSource, precision: str, compression: CompressionSpec) -> dict[str, Any]:
    """Everything an exported IR depends on."""
    return {
        "export": EXPORT_VERSION,
        # harness bookkeeping (build times and such) is not model content
        "content": cache.fingerprint_dir(src.path, exclude=frozenset({MANIFEST, synthetic.MARKER})),
        "precision": precision,
        # fp16 and int8 (per-channel) ignore the int4 options; keeping them out shares the entry.
        "compression": compression.key_dict() if precision == "int4" else None,
        "versions": package_versions(EXPORT_LIBS),
    }


def compressed_key(fp16_entry: Path, precision: str, compression: CompressionSpec) -> dict[str, Any]:
    """Everything an IR compressed from an fp16 entry depends on (the entry's name holds its own key's digest)."""
    return {
        "export": EXPORT_VERSION, "compressed_from": fp16_entry.name, "precision": precision,
        "compression": compression.key_dict() if precision == "int4" else None,
        "versions": package_versions(("openvino", "nncf")),
    }


def _verified_manifest(entry: Path, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The entry's manifest if every file checks out; a damaged entry is logged and deleted."""
    if not entry.exists():
        return None
    manifest = cache.read_json(entry / MANIFEST)
    problem: str | None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) or ExportTime.tag not in manifest:
        problem = "no valid manifest"
    else:
        problem = cache.verify_manifest(entry, manifest["files"])
    if problem is None:
        return manifest
    log(f"cache entry {entry} is damaged ({problem}); rebuilding")
    shutil.rmtree(entry)
    return None


def _build_entry(src: ResolvedSource, precision: str, compression: CompressionSpec, key: dict[str, Any],
                 entry: Path, log: Callable[[str], None], fp16_entry: Path | None = None) -> float:
    tmp = cache.new_temp_dir(entry)
    made = "compressed" if fp16_entry else "exported"
    try:
        log(f"compressing the fp16 IR of {src.slug} to {precision} with NNCF ..." if fp16_entry
            else f"exporting {src.slug} to {precision} ...")
        start = time.perf_counter()
        try:
            if fp16_entry is not None:
                compress_ir(fp16_entry, tmp, precision, compression, lambda: text_of(CALIBRATION))
            else:
                export_ir(src.path, tmp, precision, compression)
        except ModelPreparationError as e:
            # the temp dir goes away; keep its log where the message can point to it
            failed_log = entry.parent / f"{entry.name}.failed.log"
            shutil.copyfile(tmp / LOG_NAME, failed_log)
            raise ModelPreparationError(f"{e} (full log: {failed_log})") from None
        export_s = round(time.perf_counter() - start, 3)
        validate_ir_dir(tmp)
        cache.write_json(tmp / MANIFEST, {
            "key": key, "source": str(src.path), ExportTime.tag: export_s,
            "files": cache.file_manifest(tmp, exclude=MANIFEST),
        })
        cache.publish(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{made} {src.slug} to {precision} in {export_s:.1f} s")
    return export_s


def _prepared(path: Path, precision: str, source: str, kind: SourceKind, cache_hit: bool,
              export_s: float | None, notes: tuple[str, ...] = ()) -> PreparedModel:
    return PreparedModel(path=path, precision=precision, source=source, source_kind=kind, cache_hit=cache_hit,
                         export_s=export_s, size_mb=round(ir_size_mb(path), 3),
                         total_size_mb=round(total_size_mb(path), 3), notes=notes)
