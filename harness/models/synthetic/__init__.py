"""Deterministic, offline synthetic Hugging Face models: tokenizers trained on the Python standard
library's own sources (byte-level BPE for the Llama causal LMs, WordPiece for the BERT encoders, a character
sentencepiece model for SpeechT5); Llama causal LMs trained on those sources (`training.py`: `tiny` from
scratch, `small` grown from a longer-trained model of tiny's shape) and their drafts; models with seeded
random weights for the rest (BERT encoders for text embeddings and rerank, Whisper, diffusion, SpeechT5 and
its vocoder, the LLaVA vision tower, `small-wide*`).

One module per family of models (`registry.py` lists them), the models by name in `catalog.py`; here, their
cache entries: keys, building each once, repairing damaged ones.

torch, transformers and tokenizers are imported only when something has to be built.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.core.digest import digest
from harness.core.errors import ModelPreparationError
from harness.core.host import package_versions
from harness.models import cache
from harness.models.synthetic.alias import AliasSpec
from harness.models.synthetic.base import MARKER, Built, Job, built_quality
from harness.models.synthetic.bert import (
    CALIBRATION_DOCUMENTS,
    CALIBRATION_QUERIES,
    WORDPIECE_SPECIAL,
    BertSpec,
    build_wordpiece_tokenizer,
)
from harness.models.synthetic.catalog import SYNTHETIC_MODELS
from harness.models.synthetic.diffusion import (
    CLIP_EOT,
    CLIP_PATTERN,
    CLIP_SOT,
    DiffusionSpec,
    build_clip_tokenizer,
)
from harness.models.synthetic.draft import DraftSpec
from harness.models.synthetic.llama import LlamaSpec
from harness.models.synthetic.llava import IMAGE_TOKEN, LLAVA_CHAT_TEMPLATE, LlavaSpec
from harness.models.synthetic.registry import SyntheticSpec, family
from harness.models.synthetic.speecht5 import SpeechT5Spec, build_char_tokenizer
from harness.models.synthetic.tokenizer import (
    BOS_ID,
    CHAT_TEMPLATE,
    CORPUS_FILES,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    TOKENIZER,
    UNK_ID,
    TokenizerSpec,
    build_tokenizer,
    corpus_paths,
)
from harness.models.synthetic.video import T5_SPECIAL, VideoSpec, build_t5_tokenizer
from harness.models.synthetic.whisper import WHISPER_EOT, WHISPER_SPECIAL, WhisperSpec

# Bump whenever a change in this package alters what gets built.
BUILDER_VERSION = 3
BUILD_LIBS = ("torch", "transformers", "tokenizers", "safetensors")


def _spec(name: str) -> SyntheticSpec:
    try:
        return SYNTHETIC_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(SYNTHETIC_MODELS))
        raise ModelPreparationError(f"unknown synthetic model '{name}' (known: {known})") from None


def cache_key(name: str) -> dict[str, Any]:
    """Everything the built files depend on."""
    spec = _spec(name)
    builder = family(spec)
    # Patch releases and distro patches can change stdlib text, so the corpus itself is hashed too.
    corpus = hashlib.sha256()
    for p in corpus_paths(TOKENIZER):
        corpus.update(p.read_bytes())
    key: dict[str, Any] = {
        "name": name,
        "builder": BUILDER_VERSION,
        "spec": asdict(spec),
        "tokenizer": asdict(TOKENIZER),
        "corpus_sha256": corpus.hexdigest(),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "versions": package_versions(BUILD_LIBS + builder.extra_libs),
    }
    for role, dep in builder.depends_on(spec).items():
        key[role] = cache_key(dep)
    return key


def entry_dir(name: str, cache_dir: Path) -> Path:
    return Path(cache_dir) / "synthetic" / f"{name}-{digest(cache_key(name))}"


def _intact(entry: Path, log: Callable[[str], None], repair: bool = False) -> bool:
    """A built entry whose files all have their recorded sizes (every use checks: a truncated weights
    file was never rebuilt and failed every later run); with `repair` (under the entry's lock) a damaged
    entry is removed to be rebuilt."""
    marker = cache.read_json(entry / MARKER)
    if not marker:
        return False
    files = marker.get("files")
    problem = cache.verify_manifest(entry, files, hashes=False) if isinstance(files, dict) else "no file list"
    if problem is None:
        return True
    if repair:
        log(f"synthetic model {entry} is damaged ({problem}); rebuilding")
        (entry / MARKER).unlink(missing_ok=True)
        shutil.rmtree(entry, ignore_errors=True)
    return False


def build_synthetic(name: str, cache_dir: Path, log: Callable[[str], None] | None = None) -> Path:
    """Hugging Face model directory for synthetic model `name`, built once and cached."""
    log = log or (lambda _msg: None)
    entry = entry_dir(name, cache_dir)
    if _intact(entry, log):
        return entry
    with cache.entry_lock(entry, on_wait=lambda: log(f"waiting for another process building {entry.name} ...")):
        if _intact(entry, log, repair=True):  # another process built it while we waited
            return entry
        log(f"building synthetic model {name} ...")
        tmp = cache.new_temp_dir(entry)
        try:
            start = time.perf_counter()
            built = _build(name, tmp, cache_dir, log)
            if built.quality is not None:
                log(f"{name}: {built.quality.describe()}")
            cache.write_json(tmp / MARKER, {
                "key": cache_key(name),
                "build_s": round(time.perf_counter() - start, 3),
                "num_parameters": built.num_parameters,
                **({"quality": asdict(built.quality)} if built.quality is not None else {}),
                "files": cache.file_manifest(tmp, exclude=MARKER),
            })
            cache.publish(tmp, entry)
            train_checkpoint(entry).unlink(missing_ok=True)  # the entry is whole: nothing to resume any more
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


def train_checkpoint(entry: Path) -> Path:
    """Where training an entry's model keeps its checkpoint: beside the entry, so the build's temporary folder
    (removed when a build starts again) does not take it along, and under the entry's digest, so a changed
    spec or corpus never resumes it."""
    return entry.parent / f".{entry.name}.train-checkpoint.pt"


def _build(name: str, out: Path, cache_dir: Path, log: Callable[[str], None]) -> Built:
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its "Writing model shards" bars would break our one progress line
    spec = _spec(name)
    builder = family(spec)
    deps = {role: build_synthetic(dep, cache_dir, log) for role, dep in builder.depends_on(spec).items()}
    return builder.build(spec, Job(name, out, deps, train_checkpoint(entry_dir(name, cache_dir)), log))


__all__ = [
    "BOS_ID", "BUILDER_VERSION", "BUILD_LIBS", "CALIBRATION_DOCUMENTS", "CALIBRATION_QUERIES", "CHAT_TEMPLATE",
    "CLIP_EOT", "CLIP_PATTERN", "CLIP_SOT", "CORPUS_FILES", "EOS_ID", "IMAGE_TOKEN", "LLAVA_CHAT_TEMPLATE", "MARKER",
    "PAD_ID", "SPECIAL_TOKENS", "SYNTHETIC_MODELS", "T5_SPECIAL", "TOKENIZER", "UNK_ID", "WHISPER_EOT",
    "WHISPER_SPECIAL", "WORDPIECE_SPECIAL", "AliasSpec", "BertSpec", "Built", "DiffusionSpec", "DraftSpec",
    "LlamaSpec", "LlavaSpec", "SpeechT5Spec", "SyntheticSpec", "TokenizerSpec", "VideoSpec", "WhisperSpec",
    "build_char_tokenizer", "build_clip_tokenizer", "build_synthetic", "build_t5_tokenizer", "build_tokenizer",
    "build_wordpiece_tokenizer", "built_quality", "cache_key", "entry_dir", "train_checkpoint",
]
