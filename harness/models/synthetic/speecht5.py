"""SpeechT5 text-to-speech models with seeded random weights, a character tokenizer trained on the corpus and
a HiFi-GAN vocoder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import ModelPreparationError
from harness.models.export import VOCODER_DIR
from harness.models.synthetic.base import Built, Family, Job
from harness.models.synthetic.tokenizer import TOKENIZER, TokenizerSpec, corpus_paths


@dataclass(frozen=True)
class SpeechT5Spec:
    """A SpeechT5 text-to-speech model with seeded random weights, a character-level sentencepiece tokenizer
    (SpeechT5's kind) and a HiFi-GAN vocoder in its `vocoder/` folder (16 kHz, 256 samples per mel frame).
    `num_mel_bins` is 128, not SpeechT5's 80: the decoder prenet's first MatMul takes mel frames, and int4
    group compression needs its input size to be a multiple of the group size 128."""

    hidden_size: int = 128
    layers: int = 2
    heads: int = 2
    ffn_dim: int = 256
    num_mel_bins: int = 128
    vocab_size: int = 128  # model rows; the character tokenizer uses fewer
    speaker_embedding_dim: int = 512
    vocoder_channels: int = 128
    # random HiFi-GAN weights at transformers' default init (0.01) give ~1e-7 amplitude: quantization noise
    # would then swamp the signal and the accuracy figure would say nothing
    vocoder_init_range: float = 0.1
    seed: int = 0


def build_char_tokenizer(spec: TokenizerSpec, vocab_size: int):
    """A character-level sentencepiece model (the type of SpeechT5's spm_char.model) trained on the stdlib
    sources, as a SpeechT5Tokenizer."""
    import io
    import tempfile

    try:
        import sentencepiece as spm
    except ImportError as e:
        raise ModelPreparationError(
            f"building a text-to-speech model needs sentencepiece (pip install '.[export]'): {e}") from None
    from transformers import SpeechT5Tokenizer

    # every ASCII letter, digit and punctuation mark, whatever the corpus happens to lack
    lines = [" ".join([chr(c) for c in range(33, 127)])]
    for p in corpus_paths(spec):
        lines += [line.strip() for line in p.read_text(encoding="utf-8").splitlines()
                  if line.strip() and line.isascii()]
    # written through model_writer: with a model_prefix the model would record that (temporary) path and two
    # builds would differ
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="char", vocab_size=vocab_size,
        hard_vocab_limit=False, character_coverage=1.0, minloglevel=2, num_threads=1,
        # SpeechT5's special token ids, which SpeechT5Config's defaults (bos 0, pad 1, eos 2) expect
        bos_id=0, pad_id=1, eos_id=2, unk_id=3, bos_piece="<s>", pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spm_char.model"
        path.write_bytes(model.getvalue())
        return SpeechT5Tokenizer(vocab_file=str(path))


def build(spec: SpeechT5Spec, job: Job) -> Built:
    import torch
    from transformers import (
        SpeechT5Config,
        SpeechT5FeatureExtractor,
        SpeechT5ForTextToSpeech,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        SpeechT5Processor,
    )

    out = job.out
    tok = build_char_tokenizer(TOKENIZER, spec.vocab_size)
    if len(tok) > spec.vocab_size:
        raise ModelPreparationError(f"character tokenizer has {len(tok)} tokens, the model {spec.vocab_size} rows")
    SpeechT5Processor(feature_extractor=SpeechT5FeatureExtractor(num_mel_bins=spec.num_mel_bins),
                      tokenizer=tok).save_pretrained(out)
    h = spec.hidden_size
    config = SpeechT5Config(
        vocab_size=spec.vocab_size, hidden_size=h, encoder_layers=spec.layers, decoder_layers=spec.layers,
        encoder_attention_heads=spec.heads, decoder_attention_heads=spec.heads, encoder_ffn_dim=spec.ffn_dim,
        decoder_ffn_dim=spec.ffn_dim, speech_decoder_prenet_units=h, speech_decoder_postnet_layers=2,
        speech_decoder_postnet_units=h, speaker_embedding_dim=spec.speaker_embedding_dim,
        num_mel_bins=spec.num_mel_bins, reduction_factor=2, max_speech_positions=1024, max_text_positions=256,
        # The decoder prenet's dropout is on at inference too (SpeechT5's "consistent dropout"): exported, it is
        # a random op and no two pipelines would speak alike. 0 keeps the output a function of the input.
        speech_decoder_prenet_dropout=0.0,
        # the speech encoder's convolutions are not used for text to speech but are part of the model: keep small
        conv_dim=(32, 32), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2)
    torch.manual_seed(spec.seed)
    model = SpeechT5ForTextToSpeech(config).eval()
    model.save_pretrained(out)
    torch.manual_seed(spec.seed)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=spec.num_mel_bins, sampling_rate=16000, initializer_range=spec.vocoder_init_range,
        upsample_initial_channel=spec.vocoder_channels, upsample_rates=[4, 4, 4, 4],
        upsample_kernel_sizes=[8, 8, 8, 8], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]])).eval()
    vocoder.save_pretrained(out / VOCODER_DIR)
    return Built(sum(p.numel() for m in (model, vocoder) for p in m.parameters()))


FAMILY = Family(SpeechT5Spec, build, extra_libs=("sentencepiece",))
