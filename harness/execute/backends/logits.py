"""The quality kind's backends: a model's logits over fixed windows of a text set, on OpenVINO or llama.cpp.

Each runtime is a `Backend` whose build gives a `LogitsModel` (token ids in, logits of every position out); the
session around it is shared: it encodes the text set once with the fp16 IR's tokenizer (so every precision and
runtime reads the same ids), loads the fp16 IR's log-probabilities of the scored rows from the cache or computes
them once, runs one window per call (the forward pass alone is timed) and scores it
(harness/analyze/logit_quality.py)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.analyze.logit_quality import (
    TokenScores,
    log_softmax,
    score_window,
    scored_rows,
    scored_targets,
    summary,
)
from harness.core.backend import CellModels
from harness.core.digest import digest
from harness.core.errors import ModelPreparationError
from harness.core.schema import CellSpec, CheckOutputs, Sample
from harness.execute.backends.driver import Backend
from harness.kinds.quality import QualityParams
from harness.models.texts import text_of

# the fp16 baseline (and, unless the cell's properties say otherwise, the cell) runs at f32 with an f32 KV cache:
# what a quality pass measures is the weights' precision, not the CPU's default activation or cache precision
F32_PROPERTIES = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
BASELINE_VERSION = 2  # bump when what the saved baseline holds changes
PARAGRAPH = "\n\n"
# a whole-text encoding much shorter than the paragraphs' together: the tokenizer cut the text (openvino-genai's GGUF
# tokenizer keeps only the last context-length tokens of a long one)
TRUNCATED_SHARE = 0.9


class LogitsModel(Protocol):
    def forward(self, ids: np.ndarray) -> np.ndarray:
        """Logits [len(ids), vocabulary] of one window, from a fresh state."""
        ...


# ---------------------------------------------------------------- OpenVINO: the IR on the runtime itself


class OpenVINOLogits:
    """A text model's IR compiled by OpenVINO; one window per infer, its KV state reset first."""

    def __init__(self, xml: Path, device: str, properties: dict[str, Any]) -> None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(xml)
        self.inputs = {i.get_any_name() for i in model.inputs}
        if "input_ids" not in self.inputs or "logits" not in {n for o in model.outputs for n in o.get_names()}:
            raise ModelPreparationError(f"{xml} is not a text model with input_ids and logits")
        self.request = core.compile_model(model, device, properties).create_infer_request()

    def forward(self, ids: np.ndarray) -> np.ndarray:
        n = len(ids)
        feed = {"input_ids": ids[None, :].astype(np.int64), "attention_mask": np.ones((1, n), dtype=np.int64),
                "position_ids": np.arange(n, dtype=np.int64)[None, :], "beam_idx": np.zeros(1, dtype=np.int32)}
        self.request.reset_state()
        self.request.infer({k: v for k, v in feed.items() if k in self.inputs})
        logits = self.request.get_tensor("logits").data[0]
        if logits.shape[0] != n:
            raise ModelPreparationError(f"the model returns logits of {logits.shape[0]} positions for a window of {n}: "
                                        "a quality pass needs every position's (an IR with sliced logits cannot)")
        return np.array(logits, dtype=np.float32)


def genai_graph(gguf: Path, workdir: Path) -> Path:
    """The OpenVINO model openvino-genai's own GGUF reader builds from the file (what an LLMPipeline on it runs),
    saved as an IR in the cell's work folder (enable_save_ov_model writes it beside the file it is given)."""
    import openvino_genai as ov_genai

    where = workdir / "gguf-graph"
    where.mkdir(parents=True, exist_ok=True)
    link = where / gguf.name
    if not link.exists():
        link.symlink_to(gguf.resolve())
    if not (where / "openvino_model.xml").is_file():
        ov_genai.LLMPipeline(str(link), "CPU", enable_save_ov_model=True)
    return where / "openvino_model.xml"


def _build_openvino(cell: CellSpec, models: CellModels, compile_cache: Path | None) -> OpenVINOLogits:
    properties = {**F32_PROPERTIES, **cell.properties} | ({"CACHE_DIR": str(compile_cache)} if compile_cache else {})
    properties.pop("GGUF_READER", None)  # an LLMPipeline's option, not the compiled model's
    xml = genai_graph(models.target, models.workdir) if models.target.is_file() else models.target / "openvino_model.xml"
    return OpenVINOLogits(xml, cell.device, properties)


# ---------------------------------------------------------------- llama.cpp: the GGUF file through llama-cpp-python


class LlamaCppLogits:
    """The GGUF file in llama.cpp with every position's logits kept; one window per eval, its KV cache cleared."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm  # a llama_cpp.Llama loaded with logits_all

    def forward(self, ids: np.ndarray) -> np.ndarray:
        self.llm.reset()
        self.llm.eval([int(t) for t in ids])
        return np.array(self.llm.scores[:len(ids)], dtype=np.float32)


def _build_llama_cpp(cell: CellSpec, models: CellModels, compile_cache: Path | None) -> LlamaCppLogits:
    from harness.execute.backends.llama_cpp import load_llama, require_gguf

    return LlamaCppLogits(load_llama(require_gguf(cell, models), n_ctx=QualityParams.of(cell).context,
                                     logits_all=True, cell=cell, cache=models.cache))


# ---------------------------------------------------------------- the text, the baseline, the session


@dataclass(frozen=True)
class Windows:
    """The token ids of the text set cut into windows of `context`, and their digest (part of the baseline's key)."""

    ids: np.ndarray  # [windows, context]
    ids_digest: str


def encode_windows(text: str, encode: Callable[[str], list[int]], bos: int | None, params: QualityParams) -> Windows:
    """The whole text encoded at once, as llama-perplexity does (a paragraph at a time would merge the blank lines
    between paragraphs into other tokens than the model reads), cut into windows; with a BOS token each window starts
    with it in place of its first token (llama-perplexity does the same where the vocabulary adds one). A tokenizer
    that cuts long texts is one line."""
    ids = encode(text)
    pieces = sum(len(encode(p)) for p in text.split(PARAGRAPH) if p.strip())
    if len(ids) < TRUNCATED_SHARE * pieces:
        raise ModelPreparationError(f"the tokenizer encodes the whole text {params.text!r} to {len(ids)} tokens and its "
                                    f"paragraphs to {pieces}: it cuts long texts; give it a tokenizer that does not")
    n = min(params.windows(), len(ids) // params.context)
    if n < 1:
        raise ModelPreparationError(f"the text {params.text!r} encodes to {len(ids)} tokens, fewer than one window of "
                                    f"{params.context}")
    windows = np.asarray(ids[:n * params.context], dtype=np.int64).reshape(n, params.context)
    if bos is not None:
        windows[:, 0] = bos
    return Windows(windows, hashlib.sha256(windows.tobytes()).hexdigest()[:16])


def baseline_tokenizer(baseline: Path) -> tuple[Callable[[str], list[int]], int | None]:
    """Encoding without special tokens, and the BOS token the tokenizer adds (None when it adds none)."""
    import openvino_genai as ov_genai

    if not (baseline / "openvino_tokenizer.xml").is_file():
        raise ModelPreparationError(f"the fp16 IR {baseline} has no openvino_tokenizer.xml to encode the text with")
    tok = ov_genai.Tokenizer(str(baseline))

    def encode(text: str, special: bool = False) -> list[int]:
        return [int(t) for t in tok.encode(text, add_special_tokens=special).input_ids.data[0]]

    plain, special = encode("a"), encode("a", True)
    bos = special[0] if len(special) == len(plain) + 1 and special[1:] == plain else None
    return encode, bos


def _manifest_key(ir_dir: Path) -> Any:
    """What identifies a prepared IR: its cache manifest's key, else the model files' sizes and times."""
    manifest = ir_dir / "harness-manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text()).get("key")
    return [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(ir_dir.glob("openvino_model.*"))]


def baseline_logprobs(baseline: Path, windows: Windows, cell: CellSpec, cache: Path | None) -> np.ndarray:
    """The fp16 IR's log-probabilities of every window's scored rows [windows, rows, vocabulary], float32: read from
    the cache, or computed now (OpenVINO, f32) and saved there."""
    import openvino

    rows = scored_rows(windows.ids.shape[1])
    key = digest([BASELINE_VERSION, _manifest_key(baseline), windows.ids_digest, cell.device, openvino.__version__])
    path = (cache / "logits" / f"{key}.npy") if cache is not None else None
    if path is not None and path.is_file():
        return np.load(path, mmap_mode="r")
    model = OpenVINOLogits(baseline / "openvino_model.xml", cell.device, dict(F32_PROPERTIES))
    out = np.stack([log_softmax(model.forward(w)[rows]).astype(np.float32) for w in windows.ids])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)
    return out


class QualitySession:
    """One window per call: the warm-up runs the first, then every window once, in order."""

    def __init__(self, model: LogitsModel, cell: CellSpec, models: CellModels) -> None:
        if models.baseline is None:
            raise ModelPreparationError("a quality cell needs its model's fp16 IR prepared beside it")
        self.model, self.cell, self.params = model, cell, QualityParams.of(cell)
        encode, bos = baseline_tokenizer(models.baseline)
        self.windows = encode_windows(text_of(self.params.text), encode, bos, self.params)
        self.base = baseline_logprobs(models.baseline, self.windows, cell, models.cache)
        self.scores: dict[int, TokenScores] = {}

    def call(self, iteration: int, warmup: bool) -> Sample:
        index = 0 if warmup else (iteration - self.cell.warmup) % len(self.windows.ids)
        window = self.windows.ids[index]
        start = time.perf_counter_ns()
        logits = self.model.forward(window)
        end = time.perf_counter_ns()
        if not warmup and index not in self.scores:
            # rounded to float32 as the saved baseline is, so the same logits score exactly 0
            logp = log_softmax(logits[scored_rows(len(window))]).astype(np.float32)
            self.scores[index] = score_window(logp, np.asarray(self.base[index]), scored_targets(window))
        return Sample(iteration=iteration, warmup=warmup, prompt_index=index, input_tokens=len(window),
                      output_tokens=0, start_ns=start, end_ns=end, chunk_offsets_ms=[], chunk_tokens=[],
                      readings={"window_tokens": float(len(window))})

    def repeat(self, iteration: int) -> CheckOutputs:
        return CheckOutputs()  # the figures are over the windows; a window's logits are not an output to repeat

    def finish(self) -> tuple[dict[str, float], CheckOutputs]:
        parts = [self.scores[i] for i in sorted(self.scores)]
        return (summary(TokenScores.join(parts)) if parts else {}), CheckOutputs()


OPENVINO = Backend(build=_build_openvino, start=QualitySession)
LLAMA_CPP = Backend(build=_build_llama_cpp, start=QualitySession, compile_cache=False)
