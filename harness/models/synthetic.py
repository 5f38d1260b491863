"""Deterministic, offline synthetic Hugging Face models: tokenizers trained on the Python standard
library's own sources (byte-level BPE for the Llama causal LMs, WordPiece for the BERT encoders, a character
sentencepiece model for SpeechT5); Llama causal LMs trained on those sources (`training.py`: `tiny` from
scratch, `small` grown from a longer-trained model of tiny's shape) and their drafts; models with seeded
random weights for the rest (BERT encoders for text embeddings and rerank, Whisper, diffusion, SpeechT5 and
its vocoder, the LLaVA vision tower, `small-wide*`).

torch, transformers and tokenizers are imported only when something has to be built.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ModelPreparationError
from harness.core.host import package_versions
from harness.models import cache
from harness.models.export import VOCODER_DIR
from harness.models.training import TRAIN_THREADS, GrowthSpec, Quality, TrainingSpec

# Bump whenever a change here alters what gets built.
BUILDER_VERSION = 3
MARKER = "harness-synthetic.json"
BUILD_LIBS = ("torch", "transformers", "tokenizers", "safetensors")
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")  # ids 0..3, in this order
UNK_ID, BOS_ID, EOS_ID, PAD_ID = range(4)
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# Modules present in every CPython 3.10+ (none of them turned into a package since), ~2 MB.
CORPUS_FILES = (
    "_pydecimal.py", "argparse.py", "ast.py", "asyncio/base_events.py", "asyncio/tasks.py", "base64.py",
    "calendar.py", "collections/__init__.py", "configparser.py", "contextlib.py", "csv.py", "dataclasses.py",
    "datetime.py", "difflib.py", "email/message.py", "enum.py", "fractions.py", "functools.py", "gettext.py",
    "http/client.py", "http/server.py", "inspect.py", "ipaddress.py", "json/decoder.py", "json/encoder.py",
    "logging/__init__.py", "os.py", "pickle.py", "pprint.py", "random.py", "shutil.py", "socket.py",
    "statistics.py", "string.py", "subprocess.py", "tarfile.py", "tempfile.py", "textwrap.py", "threading.py",
    "typing.py",
)


@dataclass(frozen=True)
class TokenizerSpec:
    vocab_size: int = 8192
    files: tuple[str, ...] = CORPUS_FILES


@dataclass(frozen=True)
class LlamaSpec:
    """A Llama causal LM: trained with `training`, grown from another built-in model with `grown_from`
    (then trained with `training` if set), or with seeded random weights when neither is set."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int = 8192
    max_position_embeddings: int = 2048
    seed: int = 0
    # Output projections (o_proj, down_proj) of every layer after the first are scaled by this, so the
    # residual stream is shaped mostly by the first layer, as in trained LMs whose early layers already
    # predict much of the next token. Without it a first-layer draft agrees with its random target on
    # ~1% of tokens; at 0.1 on ~40%, and outputs are more varied.
    deep_layer_scale: float = 0.1  # random weights only
    training: TrainingSpec | None = None
    grown_from: GrowthSpec | None = None


@dataclass(frozen=True)
class BertSpec:
    """A BERT encoder with seeded random weights: `head` "none" is a text-embedding model (BertModel,
    exported for feature extraction), "score" a one-logit cross-encoder for rerank
    (BertForSequenceClassification, exported for text classification)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    head: str = "none"
    # "bert": WordPiece tokenizer, token type ids; "roberta": byte-level BPE, no token type ids (the
    # shape of XLM-RoBERTa rerankers such as bge-reranker, and what TextRerankPipeline's pair tokenizer feeds)
    arch: str = "bert"
    vocab_size: int = 8192
    max_position_embeddings: int = 514
    seed: int = 0
    # cross-encoders: the output layer is set so that logits over calibration pairs have mean 0 and this
    # sd; random init otherwise gives all-equal or all-saturated scores (ties after sigmoid, no ranking)
    score_logit_sd: float = 2.0


@dataclass(frozen=True)
class LlavaSpec:
    """A LLaVA vision-language model: a CLIP vision tower, a projector and a Llama `text` model, all with
    seeded random weights, plus an image processor for `image_size`-pixel square images."""

    text: LlamaSpec
    vision_hidden_size: int = 128
    vision_layers: int = 2
    vision_heads: int = 2
    vision_intermediate_size: int = 256
    image_size: int = 64
    patch_size: int = 16
    seed: int = 0
    text_from: str | None = None  # a trained built-in Llama of `text`'s shape whose weights the text model takes


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


@dataclass(frozen=True)
class AliasSpec:
    """Another built-in model under a second name: `small-draft` is `small-base`, the 7M-parameter model
    `small` was grown from (so the pair agrees more often than real pairs do: see the README)."""

    of: str


@dataclass(frozen=True)
class DraftSpec:
    """A draft model made of the target's first `num_layers` layers plus its embeddings, norm and head."""

    target: str
    num_layers: int


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


SyntheticSpec = (LlamaSpec | AliasSpec | DraftSpec | BertSpec | LlavaSpec | WhisperSpec | DiffusionSpec | SpeechT5Spec
                 | VideoSpec)

SYNTHETIC_MODELS: dict[str, SyntheticSpec] = {
    # ~150 s of training on 2 cores (~700k tokens, 1.3 passes over the corpus)
    "tiny": LlamaSpec(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=768,
                      training=TrainingSpec(steps=340)),
    # tiny's shape trained three times as long (~450 s, ~4 passes over the corpus) with another seed: what
    # `small` is grown from, and small's draft
    "small-base": LlamaSpec(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=768,
                            max_position_embeddings=4096, training=TrainingSpec(steps=1000, seed=1)),
    "small": LlamaSpec(hidden_size=1024, num_layers=12, num_heads=16, num_kv_heads=4, intermediate_size=2688,
                       max_position_embeddings=4096, grown_from=GrowthSpec(source="small-base", noise=0.1)),
    "tiny-draft": DraftSpec(target="tiny", num_layers=1),
    "tiny-vlm": LlavaSpec(text=LlamaSpec(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2,
                                          intermediate_size=768), text_from="tiny"),
    "small-vlm": LlavaSpec(text=LlamaSpec(hidden_size=1024, num_layers=12, num_heads=16, num_kv_heads=4,
                                           intermediate_size=2688, max_position_embeddings=4096),
                           vision_hidden_size=384, vision_layers=6, vision_heads=6, vision_intermediate_size=1536,
                           image_size=224, patch_size=16, text_from="small"),
    "tiny-whisper": WhisperSpec(),
    "tiny-sd": DiffusionSpec(),
    "tiny-ltx": VideoSpec(),
    "small-sd": DiffusionSpec(text_hidden_size=512, text_layers=4, unet_channels=(128, 256, 512), image_size=256),
    "small-whisper": WhisperSpec(d_model=384, layers=4, heads=6, ffn_dim=1536),
    "tiny-tts": SpeechT5Spec(),
    # Channel sizes are multiples of 128 so that int4 group compression applies.
    "tiny-embed": BertSpec(hidden_size=256, num_layers=2, num_heads=4, intermediate_size=512),
    "tiny-rerank": BertSpec(hidden_size=256, num_layers=2, num_heads=4, intermediate_size=512, head="score",
                            arch="roberta"),
    "small-embed": BertSpec(hidden_size=768, num_layers=6, num_heads=12, intermediate_size=3072),
    "small-rerank": BertSpec(hidden_size=768, num_layers=6, num_heads=12, intermediate_size=3072, head="score",
                             arch="roberta"),
    "small-draft": AliasSpec(of="small-base"),
    # `small` with a wider MLP: each generated token reads ~5.1% / ~10.2% more weight bytes (and does as much
    # more matrix work); candidates with a physical slowdown for the A/B detection benchmark
    "small-wide5": LlamaSpec(hidden_size=1024, num_layers=12, num_heads=16, num_kv_heads=4, intermediate_size=2880,
                             max_position_embeddings=4096),
    "small-wide10": LlamaSpec(hidden_size=1024, num_layers=12, num_heads=16, num_kv_heads=4, intermediate_size=3072,
                              max_position_embeddings=4096),
}
TOKENIZER = TokenizerSpec()


def _spec(name: str) -> SyntheticSpec:
    try:
        return SYNTHETIC_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(SYNTHETIC_MODELS))
        raise ModelPreparationError(f"unknown synthetic model '{name}' (known: {known})") from None


def _corpus_paths(spec: TokenizerSpec) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return [root / f for f in spec.files if (root / f).is_file()]


def cache_key(name: str) -> dict[str, Any]:
    """Everything the built files depend on."""
    spec = _spec(name)
    # Patch releases and distro patches can change stdlib text, so the corpus itself is hashed too.
    corpus = hashlib.sha256()
    for p in _corpus_paths(TOKENIZER):
        corpus.update(p.read_bytes())
    key: dict[str, Any] = {
        "name": name,
        "builder": BUILDER_VERSION,
        "spec": asdict(spec),
        "tokenizer": asdict(TOKENIZER),
        "corpus_sha256": corpus.hexdigest(),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "versions": package_versions(BUILD_LIBS + _extra_build_libs(spec)),
    }
    for role, dep in _depends_on(spec).items():
        key[role] = cache_key(dep)
    return key


def _extra_build_libs(spec: SyntheticSpec) -> tuple[str, ...]:
    """Libraries beyond BUILD_LIBS that a model's build runs."""
    if isinstance(spec, DiffusionSpec | VideoSpec):
        return ("diffusers",)
    if isinstance(spec, SpeechT5Spec):
        return ("sentencepiece",)
    return ()


def _depends_on(spec: SyntheticSpec) -> dict[str, str]:
    """The built-in models a model is made from, by role."""
    if isinstance(spec, DraftSpec):
        return {"target": spec.target}
    if isinstance(spec, AliasSpec):
        return {"of": spec.of}
    if isinstance(spec, LlamaSpec) and spec.grown_from:
        return {"grown_from": spec.grown_from.source}
    if isinstance(spec, LlavaSpec) and spec.text_from:
        return {"text_from": spec.text_from}
    return {}


def entry_dir(name: str, cache_dir: Path) -> Path:
    return Path(cache_dir) / "synthetic" / f"{name}-{cache.digest(cache_key(name))}"


def _intact(entry: Path, log: Callable[[str], None], repair: bool = False) -> bool:
    """A built entry whose files all have their recorded sizes (every use checks: a truncated weights
    file was never rebuilt and failed every later run); with `repair` (under the entry's lock) a damaged
    entry is removed to be rebuilt."""
    marker = cache.read_json(entry / MARKER)
    if not marker:
        return False
    files = marker.get("files")
    problem = cache.verify_manifest(entry, files, hashes=False) if isinstance(files, dict) else "no file list"
    if problem is None:
        return True
    if repair:
        log(f"synthetic model {entry} is damaged ({problem}); rebuilding")
        (entry / MARKER).unlink(missing_ok=True)
        shutil.rmtree(entry, ignore_errors=True)
    return False


def build_synthetic(name: str, cache_dir: Path, log: Callable[[str], None] | None = None) -> Path:
    """Hugging Face model directory for synthetic model `name`, built once and cached."""
    log = log or (lambda _msg: None)
    entry = entry_dir(name, cache_dir)
    if _intact(entry, log):
        return entry
    with cache.entry_lock(entry, on_wait=lambda: log(f"waiting for another process building {entry.name} ...")):
        if _intact(entry, log, repair=True):  # another process built it while we waited
            return entry
        log(f"building synthetic model {name} ...")
        tmp = cache.new_temp_dir(entry)
        try:
            start = time.perf_counter()
            built = _build(name, tmp, cache_dir, log)
            if built.quality is not None:
                log(f"{name}: {built.quality.describe()}")
            cache.write_json(tmp / MARKER, {
                "key": cache_key(name),
                "build_s": round(time.perf_counter() - start, 3),
                "num_parameters": built.num_parameters,
                **({"quality": asdict(built.quality)} if built.quality is not None else {}),
                "files": cache.file_manifest(tmp, exclude=MARKER),
            })
            cache.publish(tmp, entry)
            train_checkpoint(entry).unlink(missing_ok=True)  # the entry is whole: nothing to resume any more
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


def train_checkpoint(entry: Path) -> Path:
    """Where training an entry's model keeps its checkpoint: beside the entry, so the build's temporary folder
    (removed when a build starts again) does not take it along, and under the entry's digest, so a changed
    spec or corpus never resumes it."""
    return entry.parent / f".{entry.name}.train-checkpoint.pt"


def built_quality(entry: Path) -> Quality | None:
    """The held-out quality recorded when a trained model was built (None for random-weight models)."""
    found = (cache.read_json(entry / MARKER) or {}).get("quality")
    return Quality(**found) if isinstance(found, dict) else None


@dataclass(frozen=True)
class Built:
    num_parameters: int
    quality: Quality | None = None  # trained models and their drafts


def _build(name: str, out: Path, cache_dir: Path, log: Callable[[str], None]) -> Built:
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its "Writing model shards" bars would break our one progress line
    spec = _spec(name)
    deps = {role: build_synthetic(dep, cache_dir, log) for role, dep in _depends_on(spec).items()}
    if isinstance(spec, AliasSpec):
        return _build_alias(deps["of"], out)
    if isinstance(spec, DraftSpec):
        return _build_draft(spec, deps["target"], out)
    if isinstance(spec, LlavaSpec):
        return Built(_build_llava(spec, out, deps.get("text_from")))
    if isinstance(spec, WhisperSpec):
        return Built(_build_whisper(spec, out))
    if isinstance(spec, DiffusionSpec):
        return Built(_build_diffusion(spec, out))
    if isinstance(spec, SpeechT5Spec):
        return Built(_build_speecht5(spec, out))
    if isinstance(spec, VideoSpec):
        return Built(_build_video(spec, out))
    if isinstance(spec, BertSpec):
        tok = build_wordpiece_tokenizer(TOKENIZER) if spec.arch == "bert" else build_tokenizer(TOKENIZER, roberta=True)
        tok.save_pretrained(out)
        return Built(_build_bert(spec, out, tok))
    return _build_llama(name, spec, out, deps.get("grown_from"), log, train_checkpoint(entry_dir(name, cache_dir)))


def build_tokenizer(spec: TokenizerSpec, roberta: bool = False):
    """Byte-level BPE trained on stdlib sources, as a PreTrainedTokenizerFast: Llama-style (<s> a), or
    RoBERTa-style (<s> a </s>, pairs <s> a </s></s> b </s>) for the cross-encoder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    unk, bos, eos, pad = SPECIAL_TOKENS
    tok = Tokenizer(models.BPE(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([p.read_text(encoding="utf-8") for p in _corpus_paths(spec)], trainer=trainer)
    if roberta:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
            special_tokens=[(bos, BOS_ID), (eos, EOS_ID)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                       unk_token=unk, cls_token=bos, sep_token=eos, model_max_length=512)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, BOS_ID)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk,
        chat_template=CHAT_TEMPLATE,
    )


WORDPIECE_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4


def build_wordpiece_tokenizer(spec: TokenizerSpec):
    """Lower-casing WordPiece trained on stdlib sources, BERT-style ([CLS] a [SEP] b [SEP])."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    pad, unk, cls, sep, mask = WORDPIECE_SPECIAL
    tok = Tokenizer(models.WordPiece(unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=spec.vocab_size, special_tokens=list(WORDPIECE_SPECIAL),
                                        show_progress=False)
    tok.train_from_iterator([p.read_text(encoding="utf-8") for p in _corpus_paths(spec)], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, WORDPIECE_SPECIAL.index(cls)), (sep, WORDPIECE_SPECIAL.index(sep))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, unk_token=unk, cls_token=cls,
                                   sep_token=sep, mask_token=mask, model_max_length=512)


CALIBRATION_QUERIES = ("how to open a file", "sort a list of numbers", "what is a thread lock")
CALIBRATION_DOCUMENTS = ("def open(path, mode='r'): return io.open(path, mode)", "the cat sat on the mat",
                         "sorted(values, key=abs, reverse=True)", "import threading; lock = threading.Lock()",
                         "class Queue: a FIFO container", "raise ValueError('bad input')")


def _build_bert(spec: BertSpec, out: Path, tok: Any) -> int:
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertModel,
        RobertaConfig,
        RobertaForSequenceClassification,
        RobertaModel,
    )

    torch.manual_seed(spec.seed)
    common = dict(vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
                  num_attention_heads=spec.num_heads, intermediate_size=spec.intermediate_size,
                  max_position_embeddings=spec.max_position_embeddings, num_labels=1)
    if spec.arch == "roberta":
        config = RobertaConfig(**common, pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
                               type_vocab_size=1)
        classes = (RobertaForSequenceClassification, RobertaModel)
    else:
        config = BertConfig(**common, pad_token_id=0)
        classes = (BertForSequenceClassification, BertModel)
    model = (classes[0](config) if spec.head == "score" else classes[1](config)).eval()
    if spec.head == "score":
        _calibrate_score_head(model, tok, spec.score_logit_sd, token_types=spec.arch == "bert")
    model.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def _calibrate_score_head(model: Any, tok: Any, sd: float, token_types: bool) -> None:
    """Rescale the cross-encoder's last linear layer so calibration-pair logits have mean 0 and `sd`."""
    import torch

    pairs = [(q, d) for q in CALIBRATION_QUERIES for d in CALIBRATION_DOCUMENTS]
    enc = tok([q for q, _ in pairs], [d for _, d in pairs], padding=True, return_tensors="pt")
    if not token_types:  # RoBERTa has one token type; its pair tokenizer feeds none
        enc.pop("token_type_ids", None)
    last = model.classifier.out_proj if hasattr(model.classifier, "out_proj") else model.classifier
    with torch.no_grad():
        logits = model(**enc).logits[:, 0].double()
        scale = sd / float(logits.std().clamp_min(1e-12))
        last.weight.mul_(scale)
        last.bias.mul_(scale).sub_(float(logits.mean()) * scale)


IMAGE_TOKEN = "<image>"
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | upper }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def _build_llava(spec: LlavaSpec, out: Path, text_source: Path | None) -> int:
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = build_tokenizer(TOKENIZER)
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tok.chat_template = LLAVA_CHAT_TEMPLATE
    text = _llama_config(spec.text)
    text.vocab_size = len(tok)
    vision = CLIPVisionConfig(hidden_size=spec.vision_hidden_size, intermediate_size=spec.vision_intermediate_size,
                              num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
                              image_size=spec.image_size, patch_size=spec.patch_size,
                              projection_dim=spec.vision_hidden_size)
    n_patches = (spec.image_size // spec.patch_size) ** 2
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids(IMAGE_TOKEN),
                         image_seq_length=n_patches, vision_feature_select_strategy="default", vision_feature_layer=-2)
    torch.manual_seed(spec.seed)
    model = LlavaForConditionalGeneration(config).eval()
    if text_source is not None:
        _load_text_model(model, text_source)
    size = spec.image_size
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tok, patch_size=spec.patch_size, vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE, num_additional_image_tokens=1)
    processor.save_pretrained(out)
    # openvino-genai reads the image processor from preprocessor_config.json, which transformers 5 folds
    # into processor_config.json unless asked for separately
    processor.image_processor.save_pretrained(out)
    return _save(model, out)


def _load_text_model(model: Any, source: Path) -> None:
    """Put a trained Llama's weights into a LLaVA text model whose vocabulary adds the image token (its rows
    take the mean embedding and output row, so that it is neither likely nor impossible)."""
    import torch
    from transformers import LlamaForCausalLM

    trained = LlamaForCausalLM.from_pretrained(source, dtype=torch.float32)
    state = trained.model.state_dict()
    n = state["embed_tokens.weight"].shape[0]
    with torch.no_grad():
        for src, dst in ((state["embed_tokens.weight"], model.model.language_model.embed_tokens.weight),
                         (trained.lm_head.weight, model.lm_head.weight)):
            dst[:n].copy_(src)
            dst[n:].copy_(src.mean(0, keepdim=True).expand_as(dst[n:]))
        state["embed_tokens.weight"] = model.model.language_model.embed_tokens.weight.detach().clone()
        model.model.language_model.load_state_dict(state, strict=True)


WHISPER_SPECIAL = ("<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                   "<|nocaptions|>", "<|notimestamps|>")
WHISPER_EOT = "<|endoftext|>"


def _build_whisper(spec: WhisperSpec, out: Path) -> int:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([p.read_text(encoding="utf-8") for p in _corpus_paths(TOKENIZER)],
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
    return sum(p.numel() for p in model.parameters())


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
    for p in _corpus_paths(spec):
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


def _build_speecht5(spec: SpeechT5Spec, out: Path) -> int:
    import torch
    from transformers import (
        SpeechT5Config,
        SpeechT5FeatureExtractor,
        SpeechT5ForTextToSpeech,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        SpeechT5Processor,
    )

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
    return sum(p.numel() for m in (model, vocoder) for p in m.parameters())


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
    bpe.train_from_iterator([p.read_text(encoding="utf-8") for p in _corpus_paths(spec)], trainer=trainer)
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


def _build_diffusion(spec: DiffusionSpec, out: Path) -> int:
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
    pipe.save_pretrained(out)
    return sum(p.numel() for m in (text, unet, vae) for p in m.parameters())


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
    unigram.train_from_iterator([p.read_text(encoding="utf-8") for p in _corpus_paths(spec)], trainer=trainer)
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


def _build_video(spec: VideoSpec, out: Path) -> int:
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
                transformer=transformer).save_pretrained(out)
    return sum(p.numel() for m in (text, transformer, vae) for p in m.parameters())


def _llama_config(spec: LlamaSpec):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads, max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID, tie_word_embeddings=False,
    )


def _save(model, out: Path) -> int:
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    model.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def _corpus(tok: Any):
    from harness.models.training import tokenize_corpus

    return tokenize_corpus([p.read_text(encoding="utf-8") for p in _corpus_paths(TOKENIZER)], tok, EOS_ID)


def _build_llama(name: str, spec: LlamaSpec, out: Path, grow_source: Path | None,
                 log: Callable[[str], None], checkpoint: Path | None = None) -> Built:
    import torch
    from transformers import LlamaForCausalLM

    from harness.models import training

    tok = build_tokenizer(TOKENIZER)
    tok.save_pretrained(out)
    if spec.training is None and spec.grown_from is None:
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(_llama_config(spec)).eval()
        with torch.no_grad():
            for layer in model.model.layers[1:]:
                layer.self_attn.o_proj.weight.mul_(spec.deep_layer_scale)
                layer.mlp.down_proj.weight.mul_(spec.deep_layer_scale)
        return Built(_save(model, out))
    with training.torch_threads(TRAIN_THREADS):
        corpus = _corpus(tok)
        if spec.grown_from is not None:
            assert grow_source is not None
            log(f"growing {name} from {spec.grown_from.source} ...")
            source = LlamaForCausalLM.from_pretrained(grow_source, dtype=torch.float32).eval()
            model = training.grow_llama(source, _llama_config(spec), spec.grown_from)
        else:
            torch.manual_seed(spec.seed)
            model = LlamaForCausalLM(_llama_config(spec))
        if spec.training is not None:
            training.train(model, corpus, spec.training, training.progress_reporter(name, spec.training, log),
                           checkpoint=checkpoint, log=log)
        log(f"evaluating {name} on held-out text ...")
        quality = training.evaluate(model, corpus)
    return Built(_save(model, out), quality)


def _build_alias(source: Path, out: Path) -> Built:
    for f in source.iterdir():
        if f.is_file() and f.name != MARKER:
            shutil.copy2(f, out / f.name)
    marker = cache.read_json(source / MARKER) or {}
    return Built(int(marker.get("num_parameters", 0)), built_quality(source))


def _build_draft(spec: DraftSpec, target_dir: Path, out: Path) -> Built:
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.models import training

    config = LlamaConfig.from_pretrained(target_dir)
    config.num_hidden_layers = spec.num_layers
    weights: dict = {}
    for f in sorted(target_dir.glob("*.safetensors")):
        weights.update(load_file(f))
    kept = {k: v for k, v in weights.items() if not k.startswith("model.layers.")
            or int(k.split(".")[2]) < spec.num_layers}
    model = LlamaForCausalLM(config).eval()
    model.load_state_dict(kept, strict=True)
    for f in target_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy2(f, out / f.name)
    quality = None
    if built_quality(target_dir) is not None:  # a trained target: say how well its first layers predict
        with training.torch_threads(TRAIN_THREADS):
            quality = training.evaluate(model, _corpus(build_tokenizer(TOKENIZER)))
    return Built(_save(model, out), quality)
