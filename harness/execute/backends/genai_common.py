"""What the openvino-genai backends share: prompts, generation settings, the timing streamer, the
pipeline's own readings (PerfMetrics) and per-step token times."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.backend import CellModels
from harness.core.metrics import (
    TPOT,
    TTFT,
    AcceptanceRate,
    AcceptedTokens,
    DetokenizationTime,
    InputTokens,
    ProposedTokens,
    TokenizationTime,
)
from harness.core.prompts import synthetic_prompt
from harness.core.schema import CellSpec
from harness.execute.backends.driver import pipeline_properties


def pipeline_builder(pipeline: str) -> Callable[[CellSpec, CellModels, Path | None], Any]:
    """A Backend.build for the openvino-genai pipelines built as `Pipeline(model dir, device, **properties)`."""
    def build(cell: CellSpec, models: CellModels, cache_dir: Path | None) -> Any:
        import openvino_genai as ov_genai

        return getattr(ov_genai, pipeline)(str(models.target), cell.device,
                                           **pipeline_properties(cell, cache_dir=cache_dir))
    return build


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


def genai_readings(res: Any, cfg: Any = None) -> dict[str, float | None]:
    pm = res.perf_metrics
    out: dict[str, float | None] = {
        TTFT.tag: pm.get_ttft().mean,
        TPOT.tag: pm.get_tpot().mean,
        "throughput_tps": pm.get_throughput().mean,
        "generate_ms": pm.get_generate_duration().mean,
        TokenizationTime.tag: pm.get_tokenization_duration().mean,
        DetokenizationTime.tag: pm.get_detokenization_duration().mean,
        InputTokens.tag: float(pm.get_num_input_tokens()),
        "generated_tokens": float(pm.get_num_generated_tokens()),
        "load_ms": pm.get_load_time(),
    }
    ext = getattr(res, "extended_perf_metrics", None)
    if ext is not None and hasattr(ext, "get_num_accepted_tokens"):
        accepted = float(ext.get_num_accepted_tokens())
        out[AcceptedTokens.tag] = accepted
        # get_draft_acceptance_rate() is a fraction in [0, 1]; the metric is in percent. Releases before
        # 2026.4 do not have it: the rate is then absent, not guessed.
        if hasattr(ext, "get_draft_acceptance_rate"):
            out[AcceptanceRate.tag] = float(ext.get_draft_acceptance_rate()) * 100.0
        draft = getattr(ext, "draft_model_metrics", None)
        if draft is not None:
            out[ProposedTokens.tag] = float(draft.get_num_generated_tokens())
    elif cfg is not None and int(getattr(cfg, "max_ngram_size", 0) or 0) and int(getattr(cfg, "num_assistant_tokens", 0) or 0):
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
    return {AcceptedTokens.tag: accepted, ProposedTokens.tag: proposed, AcceptanceRate.tag: 100.0 * accepted / proposed}


def prompt_texts(cell: CellSpec, tok: Any, count: int, lengths: list[int] | None = None) -> list[str]:
    """`count` prompts (or documents) of the cell: from its file, or synthetic of its input length under
    `tok` (an openvino_genai.Tokenizer), or of `lengths[i]` tokens each when given."""
    if cell.prompts.source == "file":
        return cell_prompts(cell, count, None, None)

    def encode(text: str) -> list[int]:
        return [int(x) for x in tok.encode(text, add_special_tokens=False).input_ids.data[0]]

    def decode(ids: list[int]) -> str:
        return tok.decode(ids, skip_special_tokens=True)

    # the chat template's own tokens count towards the length asked for, as the pipeline counts them
    overhead = chat_overhead(tok) if cell.generation.apply_chat_template else 0
    return cell_prompts(cell, count, encode, decode, overhead, lengths)


def cell_prompts(cell: CellSpec, count: int, encode: Callable[[str], list[int]] | None,
                 decode: Callable[[list[int]], str] | None, overhead: int = 0,
                 lengths: list[int] | None = None) -> list[str]:
    """`count` prompts of the cell under any runtime's tokenizer (`encode` / `decode` without special tokens): its
    file's texts in turn, or synthetic ones of its input length (or `lengths[i]`) less `overhead` tokens."""
    if cell.prompts.source == "file":
        texts = cell.prompts.texts
        return [texts[i % len(texts)] for i in range(count)]
    assert cell.prompts.input_tokens is not None and encode is not None and decode is not None
    return [synthetic_prompt(i, max(1, (lengths[i] if lengths else cell.prompts.input_tokens) - overhead), encode,
                             decode, cell.prompts.style) for i in range(count)]


def chat_overhead(tok: Any) -> int:
    """Tokens the model's chat template adds around one user message (system prompt, role markers, the
    assistant's opening): an empty message templated and counted."""
    try:
        text = tok.apply_chat_template([{"role": "user", "content": ""}], add_generation_prompt=True)
    except Exception as e:  # noqa: BLE001 - one line: the model has no usable chat template
        raise ValueError(f"generation.apply_chat_template is set but the model's chat template failed: {e}") from None
    return len(tok.encode(text, add_special_tokens=False).input_ids.data[0])


def fed_prompt_ids(tok: Any, prompt: str, cfg: Any) -> list[int]:
    """The ids LLMPipeline.generate([prompt], cfg) feeds the model, as openvino-genai makes them: with
    apply_chat_template and a chat template in the tokenizer, the templated user turn encoded without special
    tokens; else the prompt encoded with them (checked against the pipeline's own input count by the caller)."""
    if cfg.apply_chat_template and tok.chat_template:
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        return [int(x) for x in tok.encode(text, add_special_tokens=False).input_ids.data[0]]
    return [int(x) for x in tok.encode(prompt).input_ids.data[0]]


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


def token_timeline(res: Any, start_ns: int, streamer: Any,
                   tokenizer: Any = None) -> tuple[list[float], list[int], list[int]]:
    """(chunk offsets in ms from the start, tokens per chunk, output ids) of one generate() call: from the
    timing streamer when it ran, else from openvino-genai's per-step times, the ids then re-encoded from
    the output text by `tokenizer` after the timed call (none without one), so accuracy against fp16 can
    still be counted in tokens."""
    if streamer is not None:
        return [(t - start_ns) / 1e6 for t in streamer.times_ns], list(streamer.tokens), list(streamer.ids)
    offsets, chunks = genai_step_times(res, start_ns)
    ids = [int(x) for x in tokenizer.encode(res.texts[0], add_special_tokens=False).input_ids.data[0]] \
        if tokenizer is not None else []
    return offsets, chunks, ids


def streamer_for(cell: CellSpec) -> type | None:
    """The timing streamer class a cell's calls use, or None when tokens are timed from openvino-genai's
    per-step times: asked for (`token_timing: genai`), or beam search, which cannot stream."""
    if cell.token_timing == "streamer" and cell.generation.mode != "beam":
        return timing_streamer_class()
    check_clock()
    return None
