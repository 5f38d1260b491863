"""Benchmark of the harness itself (prints figures; not a test).

1. Wall time the harness adds around each generate(): instrumented calls (token streamer +
   Sample building + metric computation, exactly the worker's per-call path) against bare
   `pipe.generate()` calls, interleaved on the same pipeline, median against median.
2. The harness's TPOT and decode tok/s against openvino-genai's PerfMetrics for the same calls.

Run: .venv/bin/python benchmarks/overhead.py [--model synthetic:small] [--precision int8] [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from harness.backends.genai_llm import generation_config, measure_call, prompt_texts, timing_streamer_class
from harness.cli import default_cache_dir
from harness.metrics import sample_values
from harness.models.prepare import prepare_model
from harness.schema import CellSpec, CompressionSpec, GenerationSpec, ModelRef, PromptSpec, ScenarioSpec


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
    prompts = prompt_texts(cell, pipe, 2 * args.rounds + 4)
    streamer_cls = timing_streamer_class()
    for p in prompts[:4]:  # warm-up
        pipe.generate([p], cfg)
    bare, instrumented, tpot_ratio, tps_ratio, e2e_vs_genai = [], [], [], [], []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        pipe.generate([prompts[4 + 2 * r]], cfg)
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s = measure_call(pipe, prompts[5 + 2 * r], cfg, streamer_cls, r, False, r)
        s.values = sample_values(s)
        instrumented.append(time.perf_counter() - t0)
        tpot, tps = s.values["tpot_ms"][0], s.values["decode_tps"][0]
        tpot_ratio.append(tpot / s.genai["tpot_ms"])
        tps_ratio.append(tps / s.genai["throughput_tps"])
        e2e_vs_genai.append(s.values["e2e_ms"][0] / s.genai["generate_ms"])

    mb, mi = statistics.median(bare), statistics.median(instrumented)
    print(f"\nmodel {args.model} {args.precision} on {args.device}: {args.rounds} rounds, "
          f"{args.input_tokens} input / {args.max_new_tokens} output tokens")
    print(f"bare generate() median wall          {mb * 1000:9.2f} ms")
    print(f"instrumented call median wall        {mi * 1000:9.2f} ms")
    print(f"harness overhead per call            {(mi - mb) / mb * 100:+9.2f} %   (target < 2%)")
    print(f"harness e2e / genai generate_duration {statistics.median(e2e_vs_genai):9.4f}")
    print(f"harness TPOT / genai TPOT            {statistics.median(tpot_ratio):9.4f}   "
          f"(|diff| {abs(statistics.median(tpot_ratio) - 1) * 100:.2f}%, target < 1%)")
    print(f"harness decode tok/s / genai tok/s   {statistics.median(tps_ratio):9.4f}   "
          f"(|diff| {abs(statistics.median(tps_ratio) - 1) * 100:.2f}%, target < 1%)")


if __name__ == "__main__":
    main()
