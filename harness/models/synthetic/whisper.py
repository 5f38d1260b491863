"""Whisper speech-to-text models with seeded random weights and a tokenizer trained on the corpus."""

from __future__ import annotations

from dataclasses import dataclass

from harness.models.synthetic.base import Built, Family, Job
from harness.models.synthetic.tokenizer import TOKENIZER, corpus_paths


@dataclass(frozen=True)
class WhisperSpec:
    """A Whisper speech-to-text model (English-only layout: no language tokens) with seeded random weights,
    a byte-level BPE tokenizer with Whisper's special and timestamp tokens, and an 80-bin feature extractor."""

    d_model: int = 128
    layers: int = 2
    heads: int = 2
    ffn_dim: int = 256
    vocab_size: int = 8000
    seed: int = 0


WHISPER_SPECIAL = ("<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                   "<|nocaptions|>", "<|notimestamps|>")
WHISPER_EOT = "<|endoftext|>"


def build(spec: WhisperSpec, job: Job) -> Built:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    out = job.out
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([p.read_text(encoding="utf-8") for p in corpus_paths(TOKENIZER)],
                            vocab_size=spec.vocab_size, special_tokens=[WHISPER_EOT], show_progress=False)
    bpe.save_model(str(out))
    bpe.save(str(out / "tokenizer.json"))
    tok = WhisperTokenizerFast(tokenizer_file=str(out / "tokenizer.json"), vocab_file=str(out / "vocab.json"),
                               merges_file=str(out / "merges.txt"), unk_token=WHISPER_EOT, bos_token=WHISPER_EOT,
                               eos_token=WHISPER_EOT, pad_token=WHISPER_EOT)
    tok.add_special_tokens({"additional_special_tokens": list(WHISPER_SPECIAL)})
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]  # 0.00 .. 30.00 s, as in Whisper's vocabulary
    tok.add_tokens(timestamps)
    tok.save_pretrained(out)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(out)
    ids = {t: tok.convert_tokens_to_ids(t) for t in (WHISPER_EOT, *WHISPER_SPECIAL)}
    eot, sot = ids[WHISPER_EOT], ids["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, encoder_layers=spec.layers, decoder_layers=spec.layers,
        d_model=spec.d_model, encoder_attention_heads=spec.heads, decoder_attention_heads=spec.heads,
        encoder_ffn_dim=spec.ffn_dim, decoder_ffn_dim=spec.ffn_dim, max_source_positions=1500,
        max_target_positions=448, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=sot, begin_suppress_tokens=[eot], suppress_tokens=[])
    torch.manual_seed(spec.seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    # The fields openvino-genai's WhisperGenerationConfig reads. Timestamp tokens are suppressed: without
    # return_timestamps a random decoder would otherwise emit them as text.
    GenerationConfig(
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot, max_length=448,
        begin_suppress_tokens=[eot], suppress_tokens=[tok.convert_tokens_to_ids(t) for t in timestamps],
        no_timestamps_token_id=ids["<|notimestamps|>"], prev_sot_token_id=ids["<|startofprev|>"],
        is_multilingual=False, max_initial_timestamp_index=50, lang_to_id={},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
    ).save_pretrained(out)
    return Built(sum(p.numel() for p in model.parameters()))


FAMILY = Family(WhisperSpec, build)
