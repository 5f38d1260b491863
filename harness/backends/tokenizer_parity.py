"""OpenVINO Tokenizers against the Hugging Face tokenizer of the same model: identical ids and text
on a fixed multilingual corpus (harness/tokenizer_corpus.py), and encode/decode speed of both.

One iteration encodes every corpus text one by one with each tokenizer, then decodes the Hugging Face
ids with each; the four timings are the sample's readings. Parity is checked once, untimed, with and
without special tokens; mismatches become cell values and a `tokenizer_parity` check."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from harness.backends import CellModels, Emit
from harness.backends.process_memory import peak_rss_mb
from harness.schema import CellSpec, Sample
from harness.tokenizer_corpus import tokenizer_corpus

EXAMPLES = 5  # mismatching texts kept for the report


def _ov_encode(tok: Any, text: str, special: bool) -> list[int]:
    return [int(x) for x in tok.encode(text, add_special_tokens=special).input_ids.data[0]]


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter_ns()
    out = fn()
    return (time.perf_counter_ns() - t) / 1e6, out


def parity(ov_tok: Any, hf_tok: Any, texts: list[str]) -> dict[str, Any]:
    """Encode (with and without special tokens) and decode mismatches between the two tokenizers."""
    enc_bad, dec_bad, errors = [], [], set()
    for i, text in enumerate(texts):
        for special in (True, False):
            hf_ids = hf_tok.encode(text, add_special_tokens=special)
            try:
                ov_ids = _ov_encode(ov_tok, text, special)
            except Exception as e:  # noqa: BLE001 - a tokenizer error on one text is a mismatch, not a crash
                ov_ids = f"error: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                errors.add(i)
            if ov_ids != hf_ids:
                at = next((j for j, (a, b) in enumerate(zip(ov_ids, hf_ids, strict=False)) if a != b),
                          min(len(ov_ids), len(hf_ids))) if isinstance(ov_ids, list) else 0
                enc_bad.append({"text": i, "special_tokens": special, "at": at, "text_start": text[:60]})
        ids = hf_tok.encode(text, add_special_tokens=False)
        hf_text = hf_tok.decode(ids, skip_special_tokens=True)
        try:
            ov_text = ov_tok.decode(ids, skip_special_tokens=True)
        except Exception as e:  # noqa: BLE001
            ov_text = f"error: {type(e).__name__}"
            errors.add(i)
        if ov_text != hf_text:
            dec_bad.append({"text": i, "text_start": text[:60], "ov": ov_text[:60], "hf": hf_text[:60]})
    return {"texts": len(texts), "encode_mismatches": len(enc_bad), "decode_mismatches": len(dec_bad),
            "encode_examples": enc_bad[:EXAMPLES], "decode_examples": dec_bad[:EXAMPLES], "errors": sorted(errors)}


def run(cell: CellSpec, models: CellModels, emit: Emit) -> None:
    import openvino_genai as ov_genai
    from transformers import AutoTokenizer

    # a diffusion pipeline keeps its tokenizer in a subfolder
    where = models.target / "tokenizer" if (models.target / "tokenizer" / "openvino_tokenizer.xml").is_file() \
        else models.target
    t0 = time.perf_counter()
    ov_tok = ov_genai.Tokenizer(str(where))
    cell_values: dict[str, float] = {"load_cold_ms": (time.perf_counter() - t0) * 1000}
    hf_tok = AutoTokenizer.from_pretrained(str(where))
    emit({"event": "loaded", "cell_values": cell_values})
    texts = tokenizer_corpus()
    found = parity(ov_tok, hf_tok, texts)
    cell_values.update({"tokenizer_encode_mismatches": float(found["encode_mismatches"]),
                        "tokenizer_decode_mismatches": float(found["decode_mismatches"])})
    # speed is measured on the texts both tokenizers handle; the others are already counted as mismatches
    texts = [t for i, t in enumerate(texts) if i not in set(found["errors"])]
    hf_ids = [hf_tok.encode(t, add_special_tokens=False) for t in texts]
    n_tokens = sum(len(x) for x in hf_ids)
    total = cell.warmup + cell.iterations
    for i in range(total):
        start = time.perf_counter_ns()
        ov_enc, _ = _timed(lambda: [ov_tok.encode(t, add_special_tokens=False) for t in texts])
        hf_enc, _ = _timed(lambda: [hf_tok.encode(t, add_special_tokens=False) for t in texts])
        ov_dec, _ = _timed(lambda: [ov_tok.decode(x, skip_special_tokens=True) for x in hf_ids])
        hf_dec, _ = _timed(lambda: [hf_tok.decode(x, skip_special_tokens=True) for x in hf_ids])
        end = time.perf_counter_ns()
        sample = Sample(iteration=i, warmup=i < cell.warmup, prompt_index=0, input_tokens=n_tokens, output_tokens=0,
                        start_ns=start, end_ns=end, chunk_offsets_ms=[], chunk_tokens=[],
                        readings={"texts": float(len(texts)), "tokens": float(n_tokens), "ov_encode_ms": ov_enc,
                                  "hf_encode_ms": hf_enc, "ov_decode_ms": ov_dec, "hf_decode_ms": hf_dec})
        emit({"event": "sample", "sample": sample.model_dump(), "of": total})
    cell_values["peak_rss_mb"] = peak_rss_mb()
    emit({"event": "done", "cell_values": cell_values, "check_outputs": {"tokenizer_parity": json.dumps(found)}})
