"""Text generation through LLMPipeline (plain, speculative, prompt lookup), Optimum Intel and PyTorch."""

from __future__ import annotations

from pydantic import Field

from harness.core.metrics import (
    TPOT,
    TTFT,
    AcceptanceRate,
    OutputSimilarity,
    OutputThroughput,
    PeakRSS,
    RooflinePercent,
    TokenMatch,
    TokensPerChunk,
)
from harness.kinds.base import (
    DEVICE_KNOBS,
    LLM_PROPERTY_KNOBS,
    Column,
    KindSpec,
    Knob,
    NoParams,
    Params,
    ReportTable,
)

GENERATE_COLUMNS = (Column("TTFT ms", TTFT.tag, digits=2), Column("TPOT ms", TPOT.tag, digits=2),
                    Column("tok/s", OutputThroughput.tag), Column("peak MiB", PeakRSS.tag, digits=0),
                    Column("tok/step", TokensPerChunk.tag, "mean", 2))
DRAFTED_COLUMNS = (*GENERATE_COLUMNS[:4], Column("accept %", AcceptanceRate.tag), GENERATE_COLUMNS[4])
# plain decoding: also the share of the host's memory bandwidth its weight traffic reaches (harness/analyze/roofline.py)
ROOFLINE_COLUMNS = (*GENERATE_COLUMNS, Column("roofline %", RooflinePercent.tag, "median", 0))
HEADLINE = (Column("tok/s", OutputThroughput.tag), Column("ms TTFT", TTFT.tag))
SPEED = (Column("TTFT ms", TTFT.tag, "median"), Column("TPOT ms", TPOT.tag, "median", 2),
         Column("tok/s", OutputThroughput.tag, "median"))
ACCURACY = (Column("token match %", TokenMatch.tag, "max", 1),
            Column("similarity %", OutputSimilarity.tag, "max", 1))


def text_table(title: str, columns: tuple[Column, ...] = GENERATE_COLUMNS, note: str = "") -> ReportTable:
    return ReportTable(title=title, columns=columns, headline=HEADLINE, note=note, speed=SPEED, accuracy=ACCURACY)


class SpeculativeParams(Params):
    keyed = ("num_assistant_tokens",)
    num_assistant_tokens: int = Field(5, gt=0)
    assistant_confidence_threshold: float | None = Field(None, gt=0)

    @classmethod
    def default_axes(cls, axes: dict[str, list]) -> dict[str, list]:
        # a confidence threshold replaces the fixed number of draft tokens
        return dict(axes) if axes else super().default_axes(axes)


class PromptLookupParams(Params):
    keyed = ("num_assistant_tokens", "max_ngram_size")
    num_assistant_tokens: int = Field(5, gt=0)
    max_ngram_size: int = Field(3, gt=0)


LLM_BACKEND = "harness.execute.backends.genai_llm:BACKEND"
LLM_REFERENCE = "harness.execute.backends.genai_llm:bare_reference_fields"
GENERATE = KindSpec(name="generate", params=NoParams, backend=LLM_BACKEND, bare_reference=LLM_REFERENCE, streamed_ids=True, roofline=True, exact_input_length=True,
                    peers=(("llama.cpp", "harness.execute.backends.llama_cpp:GENERATE"),),
                    transformers_reference=True, greedy_reference=True,
                    # SDPA: the stateful pipeline instead of the paged-attention adapter (stack-facts)
                    tune_space=(*LLM_PROPERTY_KNOBS, Knob("properties.ATTENTION_BACKEND", (None, "PA", "SDPA"))),
                    report=text_table("Plain generation", ROOFLINE_COLUMNS))
SPECULATIVE = KindSpec(name="speculative", params=SpeculativeParams, backend=LLM_BACKEND, bare_reference=LLM_REFERENCE, streamed_ids=True, same_as_greedy=True,
                       uses_draft=True, drafts=True,
                       exact_input_length=True,
                       tune_space=(*LLM_PROPERTY_KNOBS, Knob("params.num_assistant_tokens", (None, 2, 3, 4, 6, 8))),
                       report=text_table("Speculative decoding", DRAFTED_COLUMNS))
PROMPT_LOOKUP = KindSpec(name="prompt_lookup", params=PromptLookupParams, backend=LLM_BACKEND,
                         bare_reference=LLM_REFERENCE, streamed_ids=True, same_as_greedy=True,
                         pipeline_options=(("prompt_lookup", True),), drafts=True,
                         exact_input_length=True,
                         tune_space=(*LLM_PROPERTY_KNOBS, Knob("params.num_assistant_tokens", (None, 2, 3, 4, 6, 8)),
                                     Knob("params.max_ngram_size", (None, 2, 3, 4, 5))),
                         report=text_table("Prompt lookup decoding", DRAFTED_COLUMNS))
OPTIMUM = KindSpec(
    name="optimum", params=NoParams, backend="harness.execute.backends.optimum_llm:OPTIMUM", same_as_greedy=True,
    tune_space=DEVICE_KNOBS,
    report=text_table("Optimum Intel (OVModelForCausalLM.generate)", note=(
        "The same IR, prompts and generation settings through Optimum Intel; timed from tokenization to the "
        "decoded text like GenAI's generate(str), tokens timed by a transformers streamer.")))
PYTORCH = KindSpec(name="pytorch", params=NoParams, backend="harness.execute.backends.optimum_llm:PYTORCH",
                   original_weights=True,
                   reference="none", report=text_table("PyTorch reference (original Hugging Face model, f32)"))
