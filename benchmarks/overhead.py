"""Benchmark of the harness itself (prints figures; not a test).

1. Wall time the harness adds around each generate(): instrumented calls (token streamer +
   Sample building + metric computation, exactly the worker's per-call path) against bare
   `pipe.generate()` calls, interleaved on the same pipeline (the order alternates every round so
   neither side always runs first), median against median. The streamer alone is shown too.
2. The harness's TPOT and decode tok/s against openvino-genai's PerfMetrics for the same calls.

Run: .venv/bin/python benchmarks/overhead.py [--model synthetic:small] [--precision int8] [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from harness.core.metrics import sample_values
from harness.core.schema import CellSpec, CompressionSpec, GenerationSpec, ModelRef, PromptSpec, ScenarioSpec
from harness.core.stats import median_ci
from harness.execute.backends.genai_common import generation_config, prompt_texts, timing_streamer_class
from harness.execute.backends.genai_llm import measure_call
from harness.models.cache import default_cache_dir
from harness.models.prepare import prepare_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="synthetic:small")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--device", default="CPU")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--input-tokens", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = ap.parse_args()

    import openvino_genai as ov_genai

    prepared = prepare_model(args.model, args.precision, CompressionSpec(), args.cache_dir, log=print)
    cell = CellSpec(key="overhead", model=ModelRef(name="m", source=args.model), precision=args.precision,
                    device=args.device, scenario=ScenarioSpec(name="greedy", kind="generate"),
                    generation=GenerationSpec(max_new_tokens=args.max_new_tokens),
                    prompts=PromptSpec(input_tokens=args.input_tokens))
    pipe = ov_genai.LLMPipeline(str(prepared.path), args.device)
    cfg = generation_config(pipe, cell)
    # A distinct prompt per call, so prefix caching cannot favour either side.
    prompts = prompt_texts(cell, pipe, 4 * args.rounds + 4)
    streamer_cls = timing_streamer_class()
    for p in prompts[:4]:  # warm-up
        pipe.generate([p], cfg)
    times: dict[str, list[float]] = {"bare": [], "streamer": [], "instrumented": [], "genai_timing": []}
    tpot_ratio, tps_ratio, e2e_vs_genai, ttft_genai_ratio = [], [], [], []
    k = 4
    for r in range(args.rounds):
        order = ["bare", "streamer", "instrumented", "genai_timing"]
        if r % 2:
            order.reverse()
        for kind in order:
            prompt = prompts[k]
            k += 1
            t0 = time.perf_counter()
            if kind == "bare":
                pipe.generate([prompt], cfg)
            elif kind == "streamer":
                pipe.generate([prompt], cfg, streamer_cls())
            elif kind == "genai_timing":
                g = measure_call(pipe, prompt, cfg, None, r, False, r)
                g.values = sample_values(g)
            else:
                s = measure_call(pipe, prompt, cfg, streamer_cls, r, False, r)
                s.values = sample_values(s)
            times[kind].append(time.perf_counter() - t0)
        tpot_ratio.append(s.values["tpot_ms"][0] / s.genai["tpot_ms"])
        tps_ratio.append(s.values["decode_tps"][0] / s.genai["throughput_tps"])
        e2e_vs_genai.append(s.values["e2e_ms"][0] / s.genai["generate_ms"])
        ttft_genai_ratio.append(g.values["ttft_ms"][0] / g.genai["ttft_ms"])

    med = {k: statistics.median(v) for k, v in times.items()}
    # Per-round ratios (each round runs all three back to back) give a noise-aware interval.
    def overhead(kind: str) -> str:
        ratios = [i / b for i, b in zip(times[kind], times["bare"], strict=True)]
        ci = median_ci(ratios)
        pct = (med[kind] - med["bare"]) / med["bare"] * 100
        band = f"; 95% CI of the per-round median {(ci[0] - 1) * 100:+.2f} % … {(ci[1] - 1) * 100:+.2f} %" if ci else ""
        return f"{pct:+9.2f} %   (target < 2%{band})"

    print(f"\nmodel {args.model} {args.precision} on {args.device}: {args.rounds} rounds, "
          f"{args.input_tokens} input / {args.max_new_tokens} output tokens")
    print(f"bare generate() median wall             {med['bare'] * 1000:9.2f} ms")
    print(f"generate() + timing streamer            {med['streamer'] * 1000:9.2f} ms   "
          f"({(med['streamer'] - med['bare']) / med['bare'] * 100:+.2f} %)")
    print(f"full instrumented call (harness path)   {med['instrumented'] * 1000:9.2f} ms")
    print(f"harness overhead, token_timing=streamer {overhead('instrumented')}")
    print(f"harness overhead, token_timing=genai    {overhead('genai_timing')}")
    print(f"harness e2e / genai generate_duration   {statistics.median(e2e_vs_genai):9.4f}")
    print(f"harness TPOT / genai TPOT               {statistics.median(tpot_ratio):9.4f}   "
          f"(|diff| {abs(statistics.median(tpot_ratio) - 1) * 100:.2f}%, target < 1%)")
    print(f"harness decode tok/s / genai tok/s      {statistics.median(tps_ratio):9.4f}   "
          f"(|diff| {abs(statistics.median(tps_ratio) - 1) * 100:.2f}%, target < 1%)")
    print(f"genai-timing TTFT / streamer-free genai TTFT {statistics.median(ttft_genai_ratio):9.4f}")


if __name__ == "__main__":
    main()
