"""Text generation through transformers' generate(): Optimum Intel's OVModelForCausalLM on the same IR
as the GenAI cells, or the original Hugging Face model in PyTorch (f32) as the accuracy reference.

Timed like the GenAI streamer mode: the clock starts before tokenization and stops after the output
is decoded (openvino-genai's generate(str) does both inside the call); a transformers streamer
records when each generated token arrives, so TTFT, TPOT and inter-token latency mean the same
thing in both runtimes."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from harness import validation
from harness.backends import CellModels, Emit
from harness.backends.genai_llm import prompt_texts
from harness.backends.process_memory import peak_rss_mb, rss_mb
from harness.errors import ModelPreparationError
from harness.schema import CellSpec, Sample

# openvino-genai pipeline settings that are not OpenVINO compile properties.
GENAI_ONLY_PROPERTIES = {"ATTENTION_BACKEND"}


def _load(cell: CellSpec, model_dir: Path, cache_dir: Path | None) -> Any:
    try:
        from optimum.intel import OVModelForCausalLM
    except ImportError as e:
        raise ModelPreparationError(f"the optimum scenario needs optimum-intel (pip install '.[export]'): {e}") from None
    config = {k: str(v) for k, v in cell.properties.items() if k not in GENAI_ONLY_PROPERTIES}
    if cache_dir is not None:
        config["CACHE_DIR"] = str(cache_dir)
    return OVModelForCausalLM.from_pretrained(str(model_dir), device=cell.device, ov_config=config, compile=True)


def _streamer_class() -> type:
    from transformers.generation.streamers import BaseStreamer

    class TimingStreamer(BaseStreamer):
        """transformers calls put() with the prompt first, then with each new token."""

        def __init__(self) -> None:
            self.times_ns: list[int] = []
            self.tokens: list[int] = []
            self._prompt_seen = False

        def put(self, value: Any) -> None:
            now = time.perf_counter_ns()
            if not self._prompt_seen:
                self._prompt_seen = True
                return
            self.times_ns.append(now)
            self.tokens.append(int(value.reshape(-1).shape[0]))

        def end(self) -> None:
            pass

    return TimingStreamer


def _generate_kwargs(cell: CellSpec, tok: Any) -> dict[str, Any]:
    g = cell.generation
    kw: dict[str, Any] = {"max_new_tokens": g.max_new_tokens, "pad_token_id": tok.pad_token_id or tok.eos_token_id}
    if g.ignore_eos:
        kw["min_new_tokens"] = g.max_new_tokens
    elif g.min_new_tokens:
        kw["min_new_tokens"] = g.min_new_tokens
    if g.mode == "sampling":
        kw.update(do_sample=True, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k or None)
    elif g.mode == "beam":
        kw.update(do_sample=False, num_beams=g.num_beams)
    else:
        kw.update(do_sample=False, num_beams=1)
    return kw


def measure_call(model: Any, tok: Any, prompt: str, kwargs: dict[str, Any], streamer_cls: type, seed: int,
                 iteration: int, warmup: bool, prompt_index: int) -> Sample:
    import torch

    streamer = streamer_cls()
    torch.manual_seed(seed)  # seeded sampling repeats, as GenerationConfig.rng_seed does in genai
    start = time.perf_counter_ns()
    inputs = tok(prompt, return_tensors="pt")
    out = model.generate(**inputs, streamer=None if kwargs.get("num_beams", 1) > 1 else streamer, **kwargs)
    n_in = int(inputs["input_ids"].shape[1])
    ids = [int(x) for x in out[0][n_in:]]
    text = tok.decode(ids, skip_special_tokens=True)
    end = time.perf_counter_ns()
    offsets = [(t - start) / 1e6 for t in streamer.times_ns]
    return Sample(iteration=iteration, warmup=warmup, prompt_index=prompt_index, input_tokens=n_in,
                  output_tokens=len(ids), start_ns=start, end_ns=end, chunk_offsets_ms=offsets,
                  chunk_tokens=list(streamer.tokens), output_text=text, output_ids=ids)


def _load_pytorch(cell: CellSpec, model_dir: Path, cache_dir: Path | None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()


def run(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """OVModelForCausalLM: load (cold, then from the compile cache), warm up, measure."""
    _run(cell, models, emit, _load, models.target, cell.load_twice)


def run_pytorch(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """The original Hugging Face model in PyTorch (f32), on the same prompts: the accuracy reference."""
    assert models.source is not None
    _run(cell, models, emit, _load_pytorch, models.source, False)


def _run(cell: CellSpec, models: CellModels, emit: Emit, load: Any, model_dir: Path, load_twice: bool) -> None:
    from transformers import AutoTokenizer

    rss_before = rss_mb()
    cell_values: dict[str, float] = {}
    compile_cache = models.workdir / "compile-cache" if load_twice else None
    t0 = time.perf_counter()
    model = load(cell, model_dir, compile_cache)
    cell_values["load_cold_ms"] = (time.perf_counter() - t0) * 1000
    cell_values["model_memory_mb"] = rss_mb() - rss_before
    if load_twice:
        del model
        gc.collect()
        t0 = time.perf_counter()
        model = load(cell, model_dir, compile_cache)
        cell_values["load_cached_ms"] = (time.perf_counter() - t0) * 1000
    emit({"event": "loaded", "cell_values": cell_values})

    tok = AutoTokenizer.from_pretrained(str(models.target))
    kwargs = _generate_kwargs(cell, tok)
    total = cell.warmup + cell.iterations
    vary = cell.prompts.vary_per_iteration
    import openvino_genai as ov_genai

    # the same prompts as the GenAI cells: cut under the model's OpenVINO tokenizer by the same function
    prompts = prompt_texts(cell, ov_genai.Tokenizer(str(models.target)), total if vary else 1)
    streamer_cls = _streamer_class()
    measure_start = None
    i = 0
    while i < total or (measure_start is not None and i < cell.max_iterations + cell.warmup
                        and time.perf_counter() - measure_start < cell.min_measure_s):
        if i == cell.warmup:
            measure_start = time.perf_counter()
        pidx = i % len(prompts) if vary else 0
        sample = measure_call(model, tok, prompts[pidx], kwargs, streamer_cls, cell.generation.seed, i,
                              i < cell.warmup, pidx)
        i += 1
        emit({"event": "sample", "sample": sample.model_dump(), "of": max(total, i + 1)})
    check_outputs: dict[str, str] = {}
    if cell.generation.mode in ("greedy", "sampling"):
        pidx = cell.warmup if vary else 0
        again = measure_call(model, tok, prompts[pidx], kwargs, streamer_cls, cell.generation.seed, -1, True, pidx)
        check_outputs[f"repeat:{pidx}"] = again.output_text
    cell_values["peak_rss_mb"] = peak_rss_mb()
    if load is _load and validation.wanted(cell):  # the PyTorch reference is f32 already
        del model
        gc.collect()
        check_outputs.update(_validation_outputs(cell, model_dir, tok, kwargs, prompts, streamer_cls))
    emit({"event": "done", "cell_values": cell_values, "check_outputs": check_outputs})


def _validation_outputs(cell: CellSpec, model_dir: Path, tok: Any, kwargs: dict[str, Any], prompts: list[str],
                        streamer_cls: type) -> dict[str, str]:
    """The f32 validation pass (harness/validation.py) through a fresh OVModelForCausalLM."""
    def decode(vcell: CellSpec, indices: list[int]) -> list[list[int]]:
        model = _load(vcell, model_dir, None)
        return [measure_call(model, tok, prompts[p], kwargs, streamer_cls, cell.generation.seed, -1, True, p).output_ids
                for p in indices]

    return validation.outputs(cell, len(prompts), decode)
