"""Vision-language generation through openvino-genai's VLMPipeline, with generated images.

One generate(prompt, images) call per iteration, timed like text generation: TTFT on the harness
clock includes image preprocessing and the vision encoder (openvino-genai's own figure for that
part, VLMPerfMetrics' prepare-embeddings duration, is kept beside it)."""

from __future__ import annotations

import time
from typing import Any

from harness.core.backend import CellModels
from harness.core.metrics import InputTokens
from harness.core.schema import CellSpec, Sample
from harness.core.synthetic_images import synthetic_image
from harness.execute.backends.driver import Backend, TextSession, prompt_index
from harness.execute.backends.genai_common import (
    genai_readings,
    generation_config,
    pipeline_builder,
    prompt_texts,
    streamer_for,
    token_timeline,
)
from harness.kinds.vlm import VLMParams


def _images(index: int, count: int, size: int) -> list[Any]:
    import openvino as ov

    return [ov.Tensor(synthetic_image(index * count + k, size)[None]) for k in range(count)]


def measure_call(pipe: Any, prompt: str, images: list[Any], cfg: Any, streamer_cls: type | None, iteration: int,
                 warmup: bool, prompt_index: int) -> Sample:
    streamer = streamer_cls() if streamer_cls else None
    start = time.perf_counter_ns()
    res = pipe.generate(prompt, images=images, generation_config=cfg, streamer=streamer)
    end = time.perf_counter_ns()
    genai = genai_readings(res)
    pm = res.perf_metrics
    if hasattr(pm, "get_prepare_embeddings_duration"):
        genai["prepare_embeddings_ms"] = pm.get_prepare_embeddings_duration().mean
    offsets, chunks, ids = token_timeline(res, start, streamer, pipe.get_tokenizer())
    return Sample(iteration=iteration, warmup=warmup, prompt_index=prompt_index,
                  input_tokens=int(genai[InputTokens.tag] or 0), output_tokens=sum(chunks) if chunks else 0,
                  start_ns=start, end_ns=end, chunk_offsets_ms=offsets, chunk_tokens=chunks, genai=genai,
                  output_text=res.texts[0], output_ids=ids, readings={"images": float(len(images))},
                  output_ids_source="generated" if streamer is not None else "reencoded")


class VLMSession(TextSession):
    """Each call with its own generated image(s) when prompts vary."""

    def __init__(self, pipe: Any, cell: CellSpec, models: CellModels) -> None:
        self.pipe, self.cell = pipe, cell
        self.cfg = generation_config(pipe, cell)
        p = VLMParams.of(cell)
        self.n_images, self.size = p.images, p.image_size
        total = cell.warmup + cell.iterations
        self.prompts = prompt_texts(cell, pipe.get_tokenizer(), total if cell.prompts.vary_per_iteration else 1)
        self.streamer_cls = streamer_for(cell)

    def measure(self, iteration: int, warmup: bool, streamer_cls: type | None, label: int) -> Sample:
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        return measure_call(self.pipe, self.prompts[pidx], _images(pidx, self.n_images, self.size), self.cfg,
                            streamer_cls, label, warmup, pidx)


BACKEND = Backend(build=pipeline_builder("VLMPipeline"), start=VLMSession)
