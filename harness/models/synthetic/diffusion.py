"""Stable-Diffusion-layout text-to-image pipelines with seeded random weights and a CLIP-style tokenizer
trained on the corpus."""

from __future__ import annotations

import json
from dataclasses import dataclass

from harness.core.errors import ModelPreparationError
from harness.models.synthetic.base import Built, Family, Job
from harness.models.synthetic.tokenizer import TOKENIZER, TokenizerSpec, corpus_paths


@dataclass(frozen=True)
class DiffusionSpec:
    """A Stable-Diffusion-layout text-to-image pipeline with seeded random weights: CLIP text encoder with a
    CLIP-style BPE tokenizer, a UNet, a VAE and an Euler scheduler; `image_size` pixels at the VAE's 8x.
    Channel sizes are multiples of 128 (int4 groups) and of 32 (group norm)."""

    text_hidden_size: int = 128
    text_layers: int = 2
    unet_channels: tuple[int, ...] = (128, 256)
    vae_channels: tuple[int, ...] = (128, 128, 128, 128)
    image_size: int = 64
    seed: int = 0
    tokenizer: str = "clip-bytes"  # CLIP-style BPE holding every byte symbol with and without "</w>"


CLIP_SOT, CLIP_EOT = "<|startoftext|>", "<|endoftext|>"
# CLIP's pre-tokenization: special tokens, contractions, letter runs, single digits, other symbol runs
CLIP_PATTERN = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


def build_clip_tokenizer(spec: TokenizerSpec):
    """CLIP-style lower-casing byte-level BPE with end-of-word suffixes, trained on stdlib sources."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import CLIPTokenizer

    bpe = Tokenizer(models.BPE(unk_token=CLIP_EOT, end_of_word_suffix="</w>", continuing_subword_prefix=""))
    bpe.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=spec.vocab_size, special_tokens=[CLIP_SOT, CLIP_EOT],
                                  end_of_word_suffix="</w>", initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator([p.read_text(encoding="utf-8") for p in corpus_paths(spec)], trainer=trainer)
    # Like CLIP's own vocabulary, hold every byte symbol both inside a word and at its end ("x</w>"): the
    # mostly-ASCII corpus leaves most non-ASCII bytes without an end-of-word token.
    model = json.loads(bpe.to_str())["model"]
    vocab, merges = dict(model["vocab"]), [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
                                          for m in model["merges"]]
    for ch in pre_tokenizers.ByteLevel.alphabet():
        for sym in (ch, ch + "</w>"):
            vocab.setdefault(sym, len(vocab))
    bpe.model = models.BPE(vocab=vocab, merges=merges, unk_token=CLIP_EOT, end_of_word_suffix="</w>",
                           continuing_subword_prefix="")
    bpe.post_processor = processors.RobertaProcessing(
        sep=(CLIP_EOT, bpe.token_to_id(CLIP_EOT)), cls=(CLIP_SOT, bpe.token_to_id(CLIP_SOT)),
        add_prefix_space=False, trim_offsets=False)
    return CLIPTokenizer(tokenizer_object=bpe, bos_token=CLIP_SOT, eos_token=CLIP_EOT, unk_token=CLIP_EOT,
                         pad_token=CLIP_EOT, model_max_length=77)


def build(spec: DiffusionSpec, job: Job) -> Built:
    try:
        import torch
        from diffusers import (
            AutoencoderKL,
            EulerDiscreteScheduler,
            StableDiffusionPipeline,
            UNet2DConditionModel,
        )
        from transformers import CLIPTextConfig, CLIPTextModel
    except ImportError as e:
        raise ModelPreparationError(
            f"building a text-to-image model needs diffusers (pip install '.[export]'): {e}") from None

    torch.manual_seed(spec.seed)
    tok = build_clip_tokenizer(TOKENIZER)
    h = spec.text_hidden_size
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=h, intermediate_size=2 * h, num_hidden_layers=spec.text_layers,
        num_attention_heads=max(2, h // 64), max_position_embeddings=77, projection_dim=h,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    levels = len(spec.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=spec.image_size // 8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=spec.unet_channels, cross_attention_dim=h, attention_head_dim=8, norm_num_groups=32,
        down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=spec.vae_channels, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels), norm_num_groups=32,
        sample_size=spec.image_size)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(job.out)
    return Built(sum(p.numel() for m in (text, unet, vae) for p in m.parameters()))


FAMILY = Family(DiffusionSpec, build, extra_libs=("diffusers",))
