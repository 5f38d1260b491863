"""LTX-Video-layout text-to-video pipelines with seeded random weights and a T5-style tokenizer trained on
the corpus."""

from __future__ import annotations

import json
from dataclasses import dataclass

from harness.core.errors import ModelPreparationError
from harness.models.synthetic.base import Built, Family, Job
from harness.models.synthetic.tokenizer import TOKENIZER, TokenizerSpec, corpus_paths


@dataclass(frozen=True)
class VideoSpec:
    """An LTX-Video-layout text-to-video pipeline (diffusers LTXPipeline) with seeded random weights: a T5 v1.1
    encoder (gated GELU) with a SentencePiece-style Unigram tokenizer, an LTX transformer and an LTX video VAE
    keeping the real compression (32x spatial, 8x temporal), and a flow-matching Euler scheduler. The VAE has
    no timestep conditioning: openvino-genai's Text2VideoPipeline refuses it."""

    text_hidden_size: int = 128  # T5 d_model = the transformer's caption and cross-attention width
    text_layers: int = 2
    vocab_size: int = 1024
    latent_channels: int = 128  # VAE latent channels = the transformer's input and output channels
    transformer_heads: int = 2
    transformer_head_dim: int = 64
    transformer_layers: int = 2
    vae_channels: tuple[int, ...] = (32, 32, 64, 64)
    seed: int = 0


T5_SPECIAL = ("<pad>", "</s>", "<unk>")  # ids 0..2, T5's own order


def build_t5_tokenizer(spec: TokenizerSpec, vocab_size: int):
    """A T5-style tokenizer (SentencePiece Unigram over "▁"-prefixed words, <pad> </s> <unk> = 0 1 2, </s>
    appended) trained on stdlib sources, with exactly `vocab_size` entries (the encoder's embedding rows)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, T5Tokenizer

    # SentencePiece's remove_extra_whitespaces: whitespace runs (tabs, newlines) become one space, ends are
    # stripped. T5Tokenizer's own WhitespaceSplit pre-tokenizer does that in Hugging Face, but
    # openvino-tokenizers does not convert it (8 of the 37 parity texts differed); this normalizer it does.
    normalizer = normalizers.Sequence([normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()])
    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    unigram = Tokenizer(models.Unigram())
    unigram.normalizer, unigram.pre_tokenizer = normalizer, metaspace
    unigram.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(T5_SPECIAL), unk_token="<unk>",
                                      show_progress=False)
    unigram.train_from_iterator([p.read_text(encoding="utf-8") for p in corpus_paths(spec)], trainer=trainer)
    trained = json.loads(unigram.to_str())["model"]["vocab"]
    # The trainer's scores differ in their last bits from one process to the next (Rust hash-map order) and
    # equal-score pieces swap ids: rounded and sorted (score, then piece), the same pieces get the same ids.
    pieces = sorted(((piece, round(float(score), 6)) for piece, score in trained[len(T5_SPECIAL):]),
                    key=lambda ps: (-ps[1], ps[0]))
    vocab = [(piece, 0.0) for piece in T5_SPECIAL] + pieces
    # the trainer may stop short of the size asked for; unreachable fillers keep ids and embedding rows aligned
    vocab += [(f"<filler_{i}>", -100.0) for i in range(vocab_size - len(vocab))]
    # T5Tokenizer lays out T5's vocabulary and "$A </s>" template; saved as a plain fast tokenizer, because
    # T5Tokenizer rebuilds its own normalizer and pre-tokenizer when loaded, dropping this one
    backend = T5Tokenizer(vocab=vocab[:vocab_size], extra_ids=0).backend_tokenizer
    backend.normalizer, backend.pre_tokenizer = normalizer, metaspace
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=512)


def build(spec: VideoSpec, job: Job) -> Built:
    try:
        import torch
        from diffusers import (
            AutoencoderKLLTXVideo,
            FlowMatchEulerDiscreteScheduler,
            LTXPipeline,
            LTXVideoTransformer3DModel,
        )
        from transformers import T5Config, T5EncoderModel
    except ImportError as e:
        raise ModelPreparationError(
            f"building a text-to-video model needs diffusers (pip install '.[export]'): {e}") from None

    torch.manual_seed(spec.seed)
    tok = build_t5_tokenizer(TOKENIZER, spec.vocab_size)
    h = spec.text_hidden_size
    text = T5EncoderModel(T5Config(
        vocab_size=spec.vocab_size, d_model=h, d_kv=64, d_ff=2 * h, num_layers=spec.text_layers,
        num_heads=max(2, h // 64), feed_forward_proj="gated-gelu", dropout_rate=0.0, is_encoder_decoder=False,
        use_cache=False, pad_token_id=0, eos_token_id=1, tie_word_embeddings=False)).eval()
    transformer = LTXVideoTransformer3DModel(
        in_channels=spec.latent_channels, out_channels=spec.latent_channels, patch_size=1, patch_size_t=1,
        num_attention_heads=spec.transformer_heads, attention_head_dim=spec.transformer_head_dim,
        cross_attention_dim=h, num_layers=spec.transformer_layers, caption_channels=h,
        qk_norm="rms_norm_across_heads").eval()
    levels = len(spec.vae_channels)
    # patch 4 and three of the four levels scaling space and time: LTX-Video's 32x spatial and 8x temporal
    # compression, hence widths and heights in multiples of 32 and 8k + 1 frames
    scaling = (True,) * (levels - 1) + (False,)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=spec.latent_channels, block_out_channels=spec.vae_channels,
        decoder_block_out_channels=spec.vae_channels, layers_per_block=(1,) * (levels + 1),
        decoder_layers_per_block=(1,) * (levels + 1), spatio_temporal_scaling=scaling,
        decoder_spatio_temporal_scaling=scaling, decoder_inject_noise=(False,) * (levels + 1),
        upsample_residual=(False,) * levels, upsample_factor=(1,) * levels, timestep_conditioning=False,
        patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1)
    LTXPipeline(scheduler=scheduler, vae=vae, text_encoder=text, tokenizer=tok,
                transformer=transformer).save_pretrained(job.out)
    return Built(sum(p.numel() for m in (text, transformer, vae) for p in m.parameters()))


FAMILY = Family(VideoSpec, build, extra_libs=("diffusers",))
