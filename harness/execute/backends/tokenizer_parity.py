"""OpenVINO Tokenizers against the Hugging Face tokenizer of the same model: identical ids and text
on a fixed multilingual corpus (harness/execute/tokenizer_corpus.py), and encode/decode speed of both.

One iteration encodes every corpus text one by one with each tokenizer, then decodes the Hugging Face
ids with each; the four timings are the sample's readings. Parity is checked once, untimed, with and
without special tokens; mismatches become cell values and a `tokenizer_parity` check."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.core.backend import CellModels
from harness.core.metrics import TokenizerDecodeMismatches, TokenizerEncodeMismatches
from harness.core.schema import (
    CellSpec,
    CheckOutputs,
    DecodeMismatch,
    EncodeMismatch,
    Sample,
    TokenizerParity,
)
from harness.execute.backends.driver import Backend
from harness.execute.tokenizer_corpus import tokenizer_corpus

EXAMPLES = 5  # mismatching texts kept for the report


def _ov_encode(tok: Any, text: str, special: bool) -> list[int]:
    return [int(x) for x in tok.encode(text, add_special_tokens=special).input_ids.data[0]]


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter_ns()
    out = fn()
    return (time.perf_counter_ns() - t) / 1e6, out


def parity(ov_tok: Any, hf_tok: Any, texts: list[str]) -> TokenizerParity:
    """Encode (with and without special tokens) and decode mismatches between the two tokenizers."""
    enc_bad: list[EncodeMismatch] = []
    dec_bad: list[DecodeMismatch] = []
    errors: set[int] = set()
    truncated: dict[int, int] = {}
    for i, text in enumerate(texts):
        for special in (True, False):
            hf_ids = hf_tok.encode(text, add_special_tokens=special)
            ov_ids: list[int] | str
            try:
                ov_ids = _ov_encode(ov_tok, text, special)
            except Exception as e:  # noqa: BLE001 - a tokenizer error on one text is a mismatch, not a crash
                ov_ids = f"error: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                errors.add(i)
            if isinstance(ov_ids, list) and 0 < len(ov_ids) < len(hf_ids) and ov_ids in (
                    hf_ids[:len(ov_ids)], hf_ids[-len(ov_ids):]):
                # e.g. openvino-genai's GGUF tokenizer keeps the last context-length tokens of a longer text
                truncated[i] = len(ov_ids)
            elif ov_ids != hf_ids:
                at = next((j for j, (a, b) in enumerate(zip(ov_ids, hf_ids, strict=False)) if a != b),
                          min(len(ov_ids), len(hf_ids))) if isinstance(ov_ids, list) else 0
                enc_bad.append(EncodeMismatch(text=i, special_tokens=special, at=at, text_start=text[:60]))
        ids = hf_tok.encode(text, add_special_tokens=False)
        hf_text = hf_tok.decode(ids, skip_special_tokens=True)
        try:
            ov_text = ov_tok.decode(ids, skip_special_tokens=True)
        except Exception as e:  # noqa: BLE001
            ov_text = f"error: {type(e).__name__}"
            errors.add(i)
        if ov_text != hf_text:
            dec_bad.append(DecodeMismatch(text=i, text_start=text[:60], ov=ov_text[:60], hf=hf_text[:60]))
    return TokenizerParity(texts=len(texts), encode_mismatches=len(enc_bad), decode_mismatches=len(dec_bad),
                           encode_examples=enc_bad[:EXAMPLES], decode_examples=dec_bad[:EXAMPLES],
                           errors=sorted(errors), truncated=truncated)


def _load(cell: CellSpec, models: CellModels, cache_dir: Any) -> tuple[Any, Any]:
    import openvino_genai as ov_genai
    from transformers import AutoTokenizer

    if models.target.is_file():
        # precision gguf: the file's own tokenizer as openvino-genai's GGUF reader builds it, against the Hugging
        # Face tokenizer the harness rebuilds from the same metadata (what the exported IRs carry)
        from harness.models.gguf import hf_tokenizer

        return ov_genai.LLMPipeline(str(models.target), "CPU").get_tokenizer(), hf_tokenizer(models.target)
    # a diffusion pipeline keeps its tokenizer in a subfolder
    where = models.target / "tokenizer" if (models.target / "tokenizer" / "openvino_tokenizer.xml").is_file() \
        else models.target
    return ov_genai.Tokenizer(str(where)), AutoTokenizer.from_pretrained(str(where))


class ParitySession:
    """Parity once, untimed, at the start; then each call encodes and decodes the corpus with both."""

    def __init__(self, tokenizers: tuple[Any, Any], cell: CellSpec, models: CellModels) -> None:
        self.ov_tok, self.hf_tok = tokenizers
        texts = tokenizer_corpus()
        self.found = parity(self.ov_tok, self.hf_tok, texts)
        # speed is measured on the texts both tokenizers handle; the others are already counted as mismatches
        self.texts = [t for i, t in enumerate(texts) if i not in set(self.found.errors)]
        self.hf_ids = [self.hf_tok.encode(t, add_special_tokens=False) for t in self.texts]
        self.n_tokens = sum(len(x) for x in self.hf_ids)

    def call(self, iteration: int, warmup: bool) -> Sample:
        ov, hf, texts, ids = self.ov_tok, self.hf_tok, self.texts, self.hf_ids
        start = time.perf_counter_ns()
        ov_enc, _ = _timed(lambda: [ov.encode(t, add_special_tokens=False) for t in texts])
        hf_enc, _ = _timed(lambda: [hf.encode(t, add_special_tokens=False) for t in texts])
        ov_dec, _ = _timed(lambda: [ov.decode(x, skip_special_tokens=True) for x in ids])
        hf_dec, _ = _timed(lambda: [hf.decode(x, skip_special_tokens=True) for x in ids])
        end = time.perf_counter_ns()
        return Sample(iteration=iteration, warmup=warmup, prompt_index=0, input_tokens=self.n_tokens,
                      output_tokens=0, start_ns=start, end_ns=end, chunk_offsets_ms=[], chunk_tokens=[],
                      readings={"texts": float(len(texts)), "tokens": float(self.n_tokens), "ov_encode_ms": ov_enc,
                                "hf_encode_ms": hf_enc, "ov_decode_ms": ov_dec, "hf_decode_ms": hf_dec})

    def repeat(self, iteration: int) -> CheckOutputs:
        return CheckOutputs()  # parity is the check; a tokenizer has no output to repeat

    def finish(self) -> tuple[dict[str, float], CheckOutputs]:
        values = {TokenizerEncodeMismatches.tag: float(self.found.encode_mismatches),
                  TokenizerDecodeMismatches.tag: float(self.found.decode_mismatches)}
        return values, CheckOutputs(tokenizer_parity=self.found)


BACKEND = Backend(build=_load, start=ParitySession, compile_cache=False)
