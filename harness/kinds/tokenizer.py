"""OpenVINO Tokenizers against the Hugging Face tokenizer on a fixed multilingual corpus."""

from __future__ import annotations

from harness.core.metrics import (
    HFDecodeSpeed,
    HFEncodeSpeed,
    OVDecodeSpeed,
    OVEncodeSpeed,
    TokenizerDecodeMismatches,
    TokenizerEncodeMismatches,
)
from harness.kinds.base import Column, KindSpec, NoParams, ReportTable

KIND = KindSpec(
    name="tokenizer", params=NoParams, backend="harness.execute.backends.tokenizer_parity:BACKEND", generates_text=False,
    reference="none", precision_axis=False,
    report=ReportTable(
        title="OpenVINO Tokenizers vs Hugging Face",
        columns=(Column("OV encode tok/s", OVEncodeSpeed.tag, digits=0), Column("HF encode tok/s", HFEncodeSpeed.tag, digits=0),
                 Column("OV decode tok/s", OVDecodeSpeed.tag, digits=0), Column("HF decode tok/s", HFDecodeSpeed.tag, digits=0),
                 Column("encode mismatches", TokenizerEncodeMismatches.tag, "max", 0),
                 Column("decode mismatches", TokenizerDecodeMismatches.tag, "max", 0)),
        headline=(Column("OV encode tok/s", OVEncodeSpeed.tag, digits=0),
                  Column("encode mismatches", TokenizerEncodeMismatches.tag, "max", 0)),
        note="Every text of the fixed multilingual corpus (harness/execute/tokenizer_corpus.py) encoded one by one, and the "
        "Hugging Face ids decoded, by each tokenizer; mismatches count texts whose ids (with and without special "
        "tokens) or decoded text differ.",
        speed=(Column("OV encode tok/s", OVEncodeSpeed.tag, "median", 0),), speedup_metric=OVEncodeSpeed.tag))
