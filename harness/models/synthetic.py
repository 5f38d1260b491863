"""Deterministic, offline synthetic Hugging Face models: a BPE tokenizer trained on the Python
standard library's own sources and Llama causal LMs with seeded random weights.

torch, transformers and tokenizers are imported only when something has to be built.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.errors import ModelPreparationError
from harness.host import package_versions
from harness.models import cache

# Bump whenever a change here alters what gets built.
BUILDER_VERSION = 2
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
    """A Llama causal LM with seeded random weights."""

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
    deep_layer_scale: float = 0.1


@dataclass(frozen=True)
class DraftSpec:
    """A draft model made of the target's first `num_layers` layers plus its embeddings, norm and head."""

    target: str
    num_layers: int


SyntheticSpec = LlamaSpec | DraftSpec

SYNTHETIC_MODELS: dict[str, SyntheticSpec] = {
    "tiny": LlamaSpec(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=768),
    "small": LlamaSpec(hidden_size=1024, num_layers=12, num_heads=16, num_kv_heads=4, intermediate_size=2688,
                       max_position_embeddings=4096),
    "tiny-draft": DraftSpec(target="tiny", num_layers=1),
    "small-draft": DraftSpec(target="small", num_layers=2),
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
        "versions": package_versions(BUILD_LIBS),
    }
    if isinstance(spec, DraftSpec):
        key["target"] = cache_key(spec.target)
    return key


def entry_dir(name: str, cache_dir: Path) -> Path:
    return Path(cache_dir) / "synthetic" / f"{name}-{cache.digest(cache_key(name))}"


def build_synthetic(name: str, cache_dir: Path, log: Callable[[str], None] | None = None) -> Path:
    """Hugging Face model directory for synthetic model `name`, built once and cached."""
    log = log or (lambda _msg: None)
    entry = entry_dir(name, cache_dir)
    if cache.read_json(entry / MARKER):
        return entry
    with cache.entry_lock(entry, on_wait=lambda: log(f"waiting for another process building {entry.name} ...")):
        if cache.read_json(entry / MARKER):  # another process built it while we waited
            return entry
        log(f"building synthetic model {name} ...")
        tmp = cache.new_temp_dir(entry)
        try:
            start = time.perf_counter()
            n_params = _build(name, tmp, cache_dir, log)
            cache.write_json(tmp / MARKER, {
                "key": cache_key(name),
                "build_s": round(time.perf_counter() - start, 3),
                "num_parameters": n_params,
                "files": cache.file_manifest(tmp, exclude=MARKER),
            })
            cache.publish(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


def _build(name: str, out: Path, cache_dir: Path, log: Callable[[str], None]) -> int:
    spec = _spec(name)
    if isinstance(spec, DraftSpec):
        return _build_draft(spec, build_synthetic(spec.target, cache_dir, log), out)
    build_tokenizer(TOKENIZER).save_pretrained(out)
    return _build_llama(spec, out)


def build_tokenizer(spec: TokenizerSpec):
    """Byte-level BPE trained on stdlib sources, as a PreTrainedTokenizerFast."""
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
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, BOS_ID)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk,
        chat_template=CHAT_TEMPLATE,
    )


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


def _build_llama(spec: LlamaSpec, out: Path) -> int:
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(_llama_config(spec)).eval()
    with torch.no_grad():
        for layer in model.model.layers[1:]:
            layer.self_attn.o_proj.weight.mul_(spec.deep_layer_scale)
            layer.mlp.down_proj.weight.mul_(spec.deep_layer_scale)
    return _save(model, out)


def _build_draft(spec: DraftSpec, target_dir: Path, out: Path) -> int:
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

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
    return _save(model, out)
