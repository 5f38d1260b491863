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

from harness.core.backend import CellModels
from harness.core.errors import ModelPreparationError
from harness.core.schema import CellSpec, CheckOutputs, Sample
from harness.execute.backends.driver import (
    Backend,
    TextSession,
    pipeline_properties,
    prompt_index,
)
from harness.execute.backends.genai_common import prompt_texts
from harness.plan import validation


def _load(cell: CellSpec, model_dir: Path, cache_dir: Path | None) -> Any:
    try:
        from optimum.intel import OVModelForCausalLM
    except ImportError as e:
        raise ModelPreparationError(f"the optimum scenario needs optimum-intel (pip install '.[export]'): {e}") from None
    config = {k: str(v) for k, v in pipeline_properties(cell, cache_dir=cache_dir).items()}
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


class TransformersSession(TextSession):
    """transformers generate() calls on the GenAI cells' prompts (cut under the model's OpenVINO tokenizer
    by the same function); `validate`: the f32 validation pass at the end (OVModelForCausalLM only: the
    PyTorch reference is f32 already)."""

    def __init__(self, model: Any, cell: CellSpec, models: CellModels, model_dir: Path, validate: bool) -> None:
        import openvino_genai as ov_genai
        from transformers import AutoTokenizer

        self.model, self.cell, self.model_dir, self.validate = model, cell, model_dir, validate
        self.tok = AutoTokenizer.from_pretrained(str(models.target))
        self.kwargs = _generate_kwargs(cell, self.tok)
        total = cell.warmup + cell.iterations
        self.prompts = prompt_texts(cell, ov_genai.Tokenizer(str(models.target)),
                                    total if cell.prompts.vary_per_iteration else 1)
        self.token_streamer = _streamer_class()

    def measure(self, iteration: int, warmup: bool, streamer_cls: type | None, label: int) -> Sample:
        # transformers' streamer only records token times, so the repeat keeps it as well
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        return measure_call(self.model, self.tok, self.prompts[pidx], self.kwargs, self.token_streamer,
                            self.cell.generation.seed, label, warmup, pidx)

    def finish(self) -> tuple[dict[str, float], CheckOutputs]:
        if not (self.validate and validation.wanted(self.cell)):
            return {}, CheckOutputs()
        self.model = None  # the validation pass loads the model again: free this one first
        gc.collect()
        return {}, _validation_outputs(self.cell, self.model_dir, self.tok, self.kwargs, self.prompts,
                                       self.token_streamer)


OPTIMUM = Backend(build=lambda cell, models, cache: _load(cell, models.target, cache),
                  start=lambda model, cell, models: TransformersSession(model, cell, models, models.target, True))
PYTORCH = Backend(build=lambda cell, models, cache: _load_pytorch(cell, _source(models), cache),
                  start=lambda model, cell, models: TransformersSession(model, cell, models, _source(models), False),
                  compile_cache=False)


def _source(models: CellModels) -> Path:
    assert models.source is not None, "the pytorch reference needs the original Hugging Face folder"
    return models.source


def _validation_outputs(cell: CellSpec, model_dir: Path, tok: Any, kwargs: dict[str, Any], prompts: list[str],
                        streamer_cls: type) -> CheckOutputs:
    """The f32 validation pass (harness/plan/validation.py) through a fresh OVModelForCausalLM."""
    def decode(vcell: CellSpec, indices: list[int]) -> list[list[int]]:
        model = _load(vcell, model_dir, None)
        return [measure_call(model, tok, prompts[p], kwargs, streamer_cls, cell.generation.seed, -1, True, p).output_ids
                for p in indices]

    return validation.outputs(cell, len(prompts), decode)
