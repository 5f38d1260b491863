"""Text generation through openvino-genai's LLMPipeline: plain, speculative and prompt lookup."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from harness import validation
from harness.backends import CellModels, Emit
from harness.backends.driver import Backend, measure_cell, prompt_index
from harness.prompts import synthetic_prompt
from harness.schema import CellSpec, Sample

# Properties that configure the pipeline itself rather than a compiled model.
PIPELINE_ONLY_PROPERTIES = {"ATTENTION_BACKEND", "CACHE_DIR"}
# Scenario parameters that are GenerationConfig fields (the others configure the pipeline or the load).
GENERATION_CONFIG_PARAMS = {"num_assistant_tokens", "assistant_confidence_threshold", "max_ngram_size"}


def timing_streamer_class() -> type:
    import openvino_genai as ov_genai

    class TimingStreamer(ov_genai.StreamerBase):
        """Records the arrival time of every chunk of tokens; does nothing else on the hot path."""

        def __init__(self) -> None:
            super().__init__()
            self.times_ns: list[int] = []
            self.tokens: list[int] = []
            self.ids: list[int] = []
            self._running = ov_genai.StreamingStatus.RUNNING

        def write(self, token: Any) -> Any:
            self.times_ns.append(time.perf_counter_ns())
            if isinstance(token, list):
                self.tokens.append(len(token))
                self.ids.extend(token)
            else:
                self.tokens.append(1)
                self.ids.append(token)
            return self._running

        def end(self) -> None:
            pass

    return TimingStreamer


def draft_properties(cell: CellSpec) -> dict[str, Any]:
    """The draft runs with the cell's properties too (precision hints etc.), but not the pipeline-level ones."""
    return {k: v for k, v in cell.properties.items() if k not in PIPELINE_ONLY_PROPERTIES}


def build_pipeline(cell: CellSpec, models: CellModels, cache_dir: Path | None) -> Any:
    """The LLMPipeline a cell measures, with its properties, draft or prompt lookup."""
    import openvino_genai as ov_genai

    kwargs: dict[str, Any] = dict(cell.properties)
    if cache_dir is not None:
        kwargs["CACHE_DIR"] = str(cache_dir)
    if cell.scenario.kind == "speculative":
        assert models.draft is not None
        kwargs["draft_model"] = ov_genai.draft_model(str(models.draft), cell.device, **draft_properties(cell))
    elif cell.scenario.kind == "prompt_lookup":
        kwargs["prompt_lookup"] = True
    return ov_genai.LLMPipeline(str(models.target), cell.device, **kwargs)


def generation_fields(cell: CellSpec) -> dict[str, Any]:
    """The GenerationConfig fields a cell sets (the rest keep the model's own, eos included)."""
    g = cell.generation
    fields: dict[str, Any] = {"max_new_tokens": g.max_new_tokens, "min_new_tokens": g.min_new_tokens,
                              "ignore_eos": g.ignore_eos, "apply_chat_template": g.apply_chat_template,
                              "num_return_sequences": 1}
    if g.mode == "sampling":
        fields.update(do_sample=True, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k, rng_seed=g.seed)
    elif g.mode == "beam":
        fields.update(do_sample=False, num_beams=g.num_beams)
    else:
        fields.update(do_sample=False, num_beams=1)
    fields.update({k: v for k, v in cell.scenario.params.items() if k in GENERATION_CONFIG_PARAMS})
    return fields


def generation_config(pipe: Any, cell: CellSpec) -> Any:
    """The pipeline's own config (keeps the model's eos) updated with the cell's settings."""
    # LLMPipeline.get_generation_config(); ContinuousBatchingPipeline calls it get_config()
    cfg = pipe.get_generation_config() if hasattr(pipe, "get_generation_config") else pipe.get_config()
    for name, value in generation_fields(cell).items():
        setattr(cfg, name, value)
    return cfg


def _genai_readings(res: Any, cfg: Any = None) -> dict[str, float | None]:
    pm = res.perf_metrics
    out: dict[str, float | None] = {
        "ttft_ms": pm.get_ttft().mean,
        "tpot_ms": pm.get_tpot().mean,
        "throughput_tps": pm.get_throughput().mean,
        "generate_ms": pm.get_generate_duration().mean,
        "tokenization_ms": pm.get_tokenization_duration().mean,
        "detokenization_ms": pm.get_detokenization_duration().mean,
        "input_tokens": float(pm.get_num_input_tokens()),
        "generated_tokens": float(pm.get_num_generated_tokens()),
        "load_ms": pm.get_load_time(),
    }
    ext = getattr(res, "extended_perf_metrics", None)
    if ext is not None and hasattr(ext, "get_num_accepted_tokens"):
        accepted = float(ext.get_num_accepted_tokens())
        out["accepted_tokens"] = accepted
        # get_draft_acceptance_rate() is a fraction in [0, 1]; the metric is in percent. Releases before
        # 2026.4 do not have it: the rate is then absent, not guessed.
        if hasattr(ext, "get_draft_acceptance_rate"):
            out["acceptance_rate_pct"] = float(ext.get_draft_acceptance_rate()) * 100.0
        draft = getattr(ext, "draft_model_metrics", None)
        if draft is not None:
            out["proposed_tokens"] = float(draft.get_num_generated_tokens())
    elif cfg is not None and getattr(cfg, "max_ngram_size", 0) and getattr(cfg, "num_assistant_tokens", 0):
        out.update(prompt_lookup_acceptance(list(pm.raw_metrics.m_batch_sizes), int(cfg.num_assistant_tokens)))
    return out


def prompt_lookup_acceptance(step_tokens: list[int], num_assistant_tokens: int) -> dict[str, float]:
    """Prompt lookup's acceptance, which openvino-genai computes but does not return: it pads the lookup's
    candidates to num_assistant_tokens and verifies them all in every step after the first, so a step that
    yields n tokens accepted n - 1 of num_assistant_tokens proposals (its own statistics count so)."""
    verify = step_tokens[1:]
    if not verify:
        return {}
    accepted = float(sum(n - 1 for n in verify))
    proposed = float(num_assistant_tokens * len(verify))
    return {"accepted_tokens": accepted, "proposed_tokens": proposed, "acceptance_rate_pct": 100.0 * accepted / proposed}


def prompt_texts(cell: CellSpec, tok: Any, count: int, lengths: list[int] | None = None) -> list[str]:
    """`count` prompts (or documents) of the cell: from its file, or synthetic of its input length under
    `tok` (an openvino_genai.Tokenizer), or of `lengths[i]` tokens each when given."""
    if cell.prompts.source == "file":
        texts = cell.prompts.texts
        return [texts[i % len(texts)] for i in range(count)]

    def encode(text: str) -> list[int]:
        return [int(x) for x in tok.encode(text, add_special_tokens=False).input_ids.data[0]]

    def decode(ids: list[int]) -> str:
        return tok.decode(ids, skip_special_tokens=True)

    assert cell.prompts.input_tokens is not None
    return [synthetic_prompt(i, lengths[i] if lengths else cell.prompts.input_tokens, encode, decode,
                             cell.prompts.style) for i in range(count)]


def _one_call(pipe: Any, prompt: str, cfg: Any, streamer: Any) -> tuple[Any, int, int]:
    start = time.perf_counter_ns()
    res = pipe.generate([prompt], cfg, streamer)
    end = time.perf_counter_ns()
    return res, start, end


def genai_step_times(res: Any, start_ns: int) -> tuple[list[float], list[int]]:
    """Per-step token times from openvino-genai's raw metrics, as offsets from the harness's start.

    m_new_token_times are steady_clock milliseconds, the CLOCK_MONOTONIC that time.perf_counter_ns
    reads on Linux (checked by `check_clock`); m_batch_sizes holds the tokens of each step."""
    raw = res.perf_metrics.raw_metrics
    times = list(raw.m_new_token_times)
    sizes = [int(x) for x in raw.m_batch_sizes]
    offsets = [t - start_ns / 1e6 for t in times]
    return offsets, sizes if len(sizes) == len(times) else [1] * len(times)


def check_clock() -> None:
    """genai token timing needs perf_counter on the steady clock openvino-genai uses."""
    impl = time.get_clock_info("perf_counter").implementation
    if "CLOCK_MONOTONIC" not in impl:
        raise RuntimeError(f"token_timing: genai needs perf_counter on CLOCK_MONOTONIC, this host has {impl}")


def measure_call(pipe: Any, prompt: str, cfg: Any, streamer_cls: type | None, iteration: int, warmup: bool,
                 prompt_index: int) -> Sample:
    """One instrumented generate() call turned into a Sample (the harness's whole per-call work)."""
    streamer = streamer_cls() if streamer_cls else None
    res, start, end = _one_call(pipe, prompt, cfg, streamer)
    genai = _genai_readings(res, cfg)
    if streamer is not None:
        offsets = [(t - start) / 1e6 for t in streamer.times_ns]
        chunk_tokens, ids = list(streamer.tokens), list(streamer.ids)
    else:
        offsets, chunk_tokens = genai_step_times(res, start)
        # No streamer, no ids: the output re-encoded by the pipeline's tokenizer (after the timed call)
        # stands in, so accuracy against fp16 can still be counted in tokens.
        ids = [int(x) for x in pipe.get_tokenizer().encode(res.texts[0], add_special_tokens=False).input_ids.data[0]]
    out_tokens = sum(chunk_tokens) if chunk_tokens else int(genai["generated_tokens"] or 0)
    return Sample(
        iteration=iteration, warmup=warmup, prompt_index=prompt_index,
        input_tokens=int(genai["input_tokens"] or 0), output_tokens=out_tokens,
        start_ns=start, end_ns=end, chunk_offsets_ms=offsets, chunk_tokens=chunk_tokens,
        genai=genai, output_text=res.texts[0], output_ids=ids,
        output_ids_source="generated" if streamer is not None else "reencoded",
    )


class LLMSession:
    """Plain, speculative or prompt-lookup generate() calls on the cell's prompts."""

    def __init__(self, pipe: Any, cell: CellSpec, models: CellModels) -> None:
        self.pipe, self.cell, self.models = pipe, cell, models
        self.cfg = generation_config(pipe, cell)
        total = cell.warmup + cell.iterations
        self.prompts = prompt_texts(cell, pipe.get_tokenizer(), total if cell.prompts.vary_per_iteration else 1)
        # Beam search cannot stream in openvino-genai: it always takes the raw per-step timestamps.
        use_streamer = cell.token_timing == "streamer" and cell.generation.mode != "beam"
        self.streamer_cls = timing_streamer_class() if use_streamer else None
        if not use_streamer:
            check_clock()
        self.load_ms: float | None = None

    def call(self, iteration: int, warmup: bool) -> Sample:
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        sample = measure_call(self.pipe, self.prompts[pidx], self.cfg, self.streamer_cls, iteration, warmup, pidx)
        self.load_ms = sample.genai.get("load_ms")
        return sample

    def repeat(self, iteration: int) -> dict[str, str]:
        pidx = prompt_index(self.cell, iteration, len(self.prompts))
        res, _, _ = _one_call(self.pipe, self.prompts[pidx], self.cfg, None)
        return {f"repeat:{pidx}": res.texts[0]}

    def finish(self) -> tuple[dict[str, float], dict[str, str]]:
        values = {"genai_load_ms": float(self.load_ms)} if self.load_ms is not None else {}
        if not validation.wanted(self.cell):
            return values, {}
        self.pipe = None  # the f32 validation pass loads the model again: free this one first
        gc.collect()
        return values, validation_outputs(self.cell, self.models, self.prompts)


BACKEND = Backend(build=build_pipeline, start=LLMSession)


def run(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    """Load, warm up, measure; emit load/memory figures, every sample, and the check outputs."""
    measure_cell(cell, models, emit, BACKEND)


def validation_outputs(cell: CellSpec, models: CellModels, prompts: list[str]) -> dict[str, str]:
    """The f32 validation pass (harness/validation.py) through a fresh LLMPipeline."""
    def decode(vcell: CellSpec, indices: list[int]) -> list[list[int]]:
        pipe = build_pipeline(vcell, models, None)
        cfg = generation_config(pipe, vcell)
        streamer_cls = timing_streamer_class()
        out = []
        for p in indices:
            streamer = streamer_cls()
            pipe.generate([prompts[p]], cfg, streamer)
            out.append(list(streamer.ids))
        return out

    return validation.outputs(cell, len(prompts), decode)
