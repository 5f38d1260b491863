"""OpenVINO Tokenizers against the Hugging Face tokenizer on a fixed multilingual corpus."""

from __future__ import annotations

from harness.kinds.base import Column, KindSpec, NoParams, ReportTable

KIND = KindSpec(
    name="tokenizer", params=NoParams, backend="harness.execute.backends.tokenizer_parity:run", generates_text=False,
    reference="none", precision_axis=False,
    report=ReportTable(
        title="OpenVINO Tokenizers vs Hugging Face",
        columns=(Column("OV encode tok/s", "ov_encode_tps", digits=0), Column("HF encode tok/s", "hf_encode_tps", digits=0),
                 Column("OV decode tok/s", "ov_decode_tps", digits=0), Column("HF decode tok/s", "hf_decode_tps", digits=0),
                 Column("encode mismatches", "tokenizer_encode_mismatches", "max", 0),
                 Column("decode mismatches", "tokenizer_decode_mismatches", "max", 0)),
        headline=(Column("OV encode tok/s", "ov_encode_tps", digits=0),
                  Column("encode mismatches", "tokenizer_encode_mismatches", "max", 0)),
        note="Every text of the fixed multilingual corpus (harness/execute/tokenizer_corpus.py) encoded one by one, and the "
        "Hugging Face ids decoded, by each tokenizer; mismatches count texts whose ids (with and without special "
        "tokens) or decoded text differ.",
        speed=(Column("OV encode tok/s", "ov_encode_tps", "median", 0),), speedup_metric="ov_encode_tps"))
