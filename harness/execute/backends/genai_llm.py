"""Text generation through openvino-genai's LLMPipeline: plain, speculative and prompt lookup."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from harness.core.backend import CellModels
from harness.core.errors import error_line
from harness.core.metrics import GenAILoadTime, InputTokens
from harness.core.schema import CellSpec, CheckOutputs, Sample
from harness.execute.backends.driver import Backend, TextSession, prompt_index
from harness.execute.backends.genai_common import (
    fed_prompt_ids,
    genai_readings,
    generation_config,
    generation_fields,
    prompt_texts,
    streamer_for,
    timing_streamer_class,
    token_timeline,
)
from harness.kinds import kind_spec
from harness.plan import validation

# Properties that configure the pipeline itself rather than a compiled model.
PIPELINE_ONLY_PROPERTIES = {"ATTENTION_BACKEND", "CACHE_DIR"}


def draft_properties(cell: CellSpec) -> dict[str, Any]:
    """The draft runs with the cell's properties too (precision hints etc.), but not the pipeline-level ones."""
    return {k: v for k, v in cell.properties.items() if k not in PIPELINE_ONLY_PROPERTIES}


def bare_reference_fields(cell: CellSpec) -> dict[str, Any]:
    """The bare loop's settings for an LLMPipeline cell: the same generation fields, properties, draft and
    pipeline options the worker uses (harness/execute/bare_reference.py)."""
    kind = kind_spec(cell.scenario.kind)
    fields: dict[str, Any] = {"iterations": cell.iterations, "generation": generation_fields(cell),
                              "properties": dict(cell.properties),
                              "prompt_lookup": dict(kind.pipeline_options).get("prompt_lookup", False)}
    if kind.uses_draft:
        fields["draft_properties"] = draft_properties(cell)
    return fields


def build_pipeline(cell: CellSpec, models: CellModels, cache_dir: Path | None) -> Any:
    """The LLMPipeline a cell measures, with its properties, draft or prompt lookup."""
    import openvino_genai as ov_genai

    kwargs: dict[str, Any] = dict(cell.properties)
    if cache_dir is not None:
        kwargs["CACHE_DIR"] = str(cache_dir)
    kind = kind_spec(cell.scenario.kind)
    if kind.uses_draft:
        assert models.draft is not None
        kwargs["draft_model"] = ov_genai.draft_model(str(models.draft), cell.device, **draft_properties(cell))
    kwargs.update(kind.pipeline_options)
    try:
        return ov_genai.LLMPipeline(str(models.target), cell.device, **kwargs)
    except Exception as e:
        if not models.target.is_file():
            raise
        # a GGUF file read by openvino-genai itself (precision gguf): the reader's message, and the other route
        raise RuntimeError(f"openvino-genai's GGUF reader refused {models.target.name}: {error_line(e)}; the IR route "
                           "reads the same file through transformers (precisions fp16 / int8 / int4)") from None


def _one_call(pipe: Any, prompt: str, cfg: Any, streamer: Any) -> tuple[Any, int, int]:
    start = time.perf_counter_ns()
    res = pipe.generate([prompt], cfg, streamer)
    end = time.perf_counter_ns()
    return res, start, end


def measure_call(pipe: Any, prompt: str, cfg: Any, streamer_cls: type | None, iteration: int, warmup: bool,
                 prompt_index: int) -> Sample:
    """One instrumented generate() call turned into a Sample (the harness's whole per-call work)."""
    streamer = streamer_cls() if streamer_cls else None
    res, start, end = _one_call(pipe, prompt, cfg, streamer)
    genai = genai_readings(res, cfg)
    offsets, chunk_tokens, ids = token_timeline(res, start, streamer, pipe.get_tokenizer())
    out_tokens = sum(chunk_tokens) if chunk_tokens else int(genai["generated_tokens"] or 0)
    return Sample(
        iteration=iteration, warmup=warmup, prompt_index=prompt_index,
        input_tokens=int(genai[InputTokens.tag] or 0), output_tokens=out_tokens,
        start_ns=start, end_ns=end, chunk_offsets_ms=offsets, chunk_tokens=chunk_tokens,
        genai=genai, output_text=res.texts[0], output_ids=ids,
        output_ids_source="generated" if streamer is not None else "reencoded",
    )


class LLMSession(TextSession):
    """Plain, speculative or prompt-lookup generate() calls on the cell's prompts."""

    def __init__(self, pipe: Any, cell: CellSpec, models: CellModels) -> None:
        self.pipe, self.cell, self.models = pipe, cell, models
        self.cfg = generation_config(pipe, cell)
        total = cell.warmup + cell.iterations
        self.prompts = prompt_texts(cell, pipe.get_tokenizer(), total if cell.prompts.vary_per_iteration else 1)
        self.streamer_cls = streamer_for(cell)
        self.load_ms: float | None = None

    def measure(self, iteration: int, warmup: bool, streamer_cls: type | None, label: int) -> Sample:
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        sample = measure_call(self.pipe, self.prompts[pidx], self.cfg, streamer_cls, label, warmup, pidx)
        self.load_ms = sample.genai.get("load_ms")
        return sample

    def finish(self) -> tuple[dict[str, float], CheckOutputs]:
        values = {GenAILoadTime.tag: float(self.load_ms)} if self.load_ms is not None else {}
        if not validation.wanted(self.cell):
            return values, CheckOutputs()
        self.pipe = None  # the f32 validation pass loads the model again: free this one first
        gc.collect()
        return values, validation_outputs(self.cell, self.models, self.prompts)


BACKEND = Backend(build=build_pipeline, start=LLMSession)


def validation_outputs(cell: CellSpec, models: CellModels, prompts: list[str]) -> CheckOutputs:
    """The f32 validation pass (harness/plan/validation.py) through a fresh LLMPipeline, with the prompt ids it fed
    (for the transformers reference, which is fed the same ids) and the input tokens the pipeline counted."""
    prompt_ids: dict[int, list[int]] = {}
    input_tokens: dict[int, int] = {}

    def decode(vcell: CellSpec, indices: list[int]) -> list[list[int]]:
        pipe = build_pipeline(vcell, models, None)
        cfg = generation_config(pipe, vcell)
        streamer_cls = timing_streamer_class()
        out = []
        for p in indices:
            streamer = streamer_cls()
            res = pipe.generate([prompts[p]], cfg, streamer)
            out.append(list(streamer.ids))
            prompt_ids[p] = fed_prompt_ids(pipe.get_tokenizer(), prompts[p], cfg)
            input_tokens[p] = int(res.perf_metrics.get_num_input_tokens())
        return out

    found = validation.outputs(cell, len(prompts), decode)
    return found.model_copy(update={"f32_prompt_ids": prompt_ids, "f32_input_tokens": input_tokens})
