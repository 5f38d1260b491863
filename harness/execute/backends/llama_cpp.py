"""llama.cpp, the runtime CPU users compare OpenVINO with, through llama-cpp-python (the `[peers]` extra), on the
same GGUF file: text generation here, logits for the quality kind in logits.py. Each generated token is timed as it
comes out of llama-cpp-python's generator, on the same clock and with the same Sample as an OpenVINO cell."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from harness.core.backend import CellModels
from harness.core.schema import CellSpec, Sample
from harness.execute.backends.driver import Backend, TextSession, prompt_index
from harness.kinds.base import Unsupported

PACKAGE = "llama-cpp-python"
# llama.cpp reads a thread count, not OpenVINO's properties; this one maps (the others are left out, and said so)
THREADS_PROPERTY = "INFERENCE_NUM_THREADS"
CONTEXT_MARGIN = 16  # tokens of context past the longest prompt and its new tokens


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as e:
        raise Unsupported(f"runtime llama.cpp needs {PACKAGE}: install the harness's [peers] extra "
                          f"(scripts/install-peers; {e})") from None
    return llama_cpp


def threads(cell: CellSpec | None = None) -> int:
    """The CPU threads llama.cpp runs on: the cell's INFERENCE_NUM_THREADS, else every CPU this process may use
    (llama-cpp-python's own default is half of them; OpenVINO's CPU plugin uses them all)."""
    asked = cell.properties.get(THREADS_PROPERTY) if cell is not None else None
    return int(asked) if isinstance(asked, int) and asked > 0 else len(os.sched_getaffinity(0))


def load_llama(gguf: Path, n_ctx: int, logits_all: bool = False, cell: CellSpec | None = None,
               cache: Path | None = None) -> Any:
    """A llama_cpp.Llama over the file on the CPU, one batch as wide as the context, on the CPU variant of the build
    this machine runs (llama_cpp_cpu.py)."""
    from harness.execute.backends.llama_cpp_cpu import ensure_cpu_backend

    llama_cpp = _llama_cpp()
    ensure_cpu_backend(gguf, cache)
    n = threads(cell)
    return llama_cpp.Llama(model_path=str(gguf), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=n,
                           n_threads_batch=n, logits_all=logits_all, n_gpu_layers=0, verbose=False)


def require_gguf(cell: CellSpec, models: CellModels) -> Path:
    """The cell's GGUF file; Unsupported (one line) for any other device or model."""
    if cell.device != "CPU":
        raise Unsupported(f"runtime llama.cpp runs on the CPU here (the harness builds it without GPU backends); "
                          f"this cell's device is {cell.device}")
    if not models.target.is_file() or models.target.suffix != ".gguf":
        raise Unsupported(f"runtime llama.cpp reads GGUF files; this cell's model is {models.target} (precision "
                          f"{cell.precision}): use precision gguf with a .gguf source")
    return models.target


def _context_for(cell: CellSpec, gguf: Path, models: CellModels) -> int:
    if cell.prompts.source == "synthetic" and cell.prompts.input_tokens is not None:
        longest = cell.prompts.input_tokens
    else:  # a file's prompts: counted by the file's own tokenizer (vocabulary only, no weights loaded)
        from harness.execute.backends.llama_cpp_cpu import ensure_cpu_backend

        ensure_cpu_backend(gguf, models.cache)
        vocab = _llama_cpp().Llama(model_path=str(gguf), vocab_only=True, verbose=False)
        longest = max(len(vocab.tokenize(t.encode(), add_bos=True)) for t in cell.prompts.texts)
    return longest + cell.generation.max_new_tokens + CONTEXT_MARGIN


def _build(cell: CellSpec, models: CellModels, compile_cache: Path | None) -> Any:
    gguf = require_gguf(cell, models)
    g = cell.generation
    if g.mode == "beam":
        raise Unsupported("runtime llama.cpp: beam search is not measured (llama-cpp-python has none)")
    if g.apply_chat_template:
        raise Unsupported("runtime llama.cpp: generation.apply_chat_template is not supported yet; send plain prompts")
    return load_llama(gguf, _context_for(cell, gguf, models), cell=cell, cache=models.cache)


class LlamaCppSession(TextSession):
    """One llama-cpp-python generation per call on the cell's prompts (synthetic ones of the exact length under the
    file's own tokenizer), its KV cache cleared first so no call reuses another's prompt."""

    def __init__(self, llm: Any, cell: CellSpec, models: CellModels) -> None:
        from harness.execute.backends.genai_common import cell_prompts

        self.llm, self.cell = llm, cell
        count = cell.warmup + cell.iterations if cell.prompts.vary_per_iteration else 1
        self.prompts = cell_prompts(cell, count, self._encode, self._decode)
        self.eos = llm.token_eos()

    def _encode(self, text: str) -> list[int]:
        return [int(t) for t in self.llm.tokenize(text.encode(), add_bos=False, special=False)]

    def _decode(self, ids: list[int]) -> str:
        return bytes(self.llm.detokenize(ids)).decode("utf-8", errors="replace")

    def measure(self, iteration: int, warmup: bool, streamer_cls: type | None, label: int) -> Sample:
        g = self.cell.generation
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        ids = [int(t) for t in self.llm.tokenize(self.prompts[pidx].encode(), add_bos=True, special=False)]
        sampling = g.mode == "sampling"
        if sampling:
            self.llm.set_seed(g.seed)
        self.llm.reset()  # no prefix of the last call's prompt is reused
        out: list[int] = []
        offsets: list[float] = []
        start = time.perf_counter_ns()
        for token in self.llm.generate(ids, reset=True, temp=g.temperature if sampling else 0.0,
                                       top_k=(g.top_k or 0) if sampling else 1, top_p=g.top_p if sampling else 1.0,
                                       repeat_penalty=1.0):
            offsets.append((time.perf_counter_ns() - start) / 1e6)
            if token == self.eos and not g.ignore_eos and len(out) >= g.min_new_tokens:
                offsets.pop()
                break
            out.append(int(token))
            if len(out) >= g.max_new_tokens:
                break
        end = time.perf_counter_ns()
        return Sample(iteration=label, warmup=warmup, prompt_index=pidx, input_tokens=len(ids), output_tokens=len(out),
                      start_ns=start, end_ns=end, chunk_offsets_ms=offsets, chunk_tokens=[1] * len(out),
                      output_text=self._decode(out), output_ids=out, output_ids_source="generated")


GENERATE = Backend(build=_build, start=LlamaCppSession, compile_cache=False)
