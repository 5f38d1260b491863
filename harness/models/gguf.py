"""GGUF files: what one holds (read with the `gguf` package), and its conversion to a Hugging Face folder.

The weights go through transformers' GGUF loader (dequantized to f32). The tokenizer does not: transformers
5.5's GGUF tokenizer conversion gets SmolLM2's BPE tokenizer wrong (a SentencePiece-style decoder, a prefix
space, `<|im_start|>` as both BOS and EOS, CodeLlama's class), and an OpenVINO tokenizer converted from it
encoded every text differently at spaces. So a BPE ("gpt2") tokenizer is rebuilt here from the file's own
vocabulary, merges and pre-tokenizer name, the way llama.cpp reads them; a tokenizer kind or pre-tokenizer
not known here is refused in one line naming it, with the route that reads the file as it is."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessInputError, ModelPreparationError
from harness.core.input_files import MAX_MODEL_CONFIG_BYTES, gguf_header, load_json

# llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) -> whether digits are split one by one before the
# GPT-2 byte-level regex (llama-vocab.cpp: STARCODER, REFACT, COMMAND_R, SMOLLM, CODESHELL, EXAONE, MINERVA
# use "\p{N}" then the GPT-2 pattern; GPT2, MPT, OLMO, JAIS the GPT-2 pattern alone).
GPT2_PRE_TOKENIZERS = {
    # "gpt-2" is the name llama.cpp's converter writes and reads; "gpt2" only older files carry
    "gpt-2": False, "gpt2": False, "mpt": False, "olmo": False, "jais": False, "default": False,
    "starcoder": True, "refact": True, "command-r": True, "smollm": True, "codeshell": True, "exaone": True,
    "minerva": True,
}
# GGUF token types (gguf.TokenType): control and user-defined tokens are matched whole, never split
CONTROL, USER_DEFINED = 3, 4
# what transformers' GGUF loader maps to a Hugging Face model class
TRANSFORMERS_ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gemma3", "stablelm",
                              "starcoder2", "falcon", "gpt2", "bloom", "t5", "mamba", "nemotron", "qwen2moe")
# What the harness takes from a file's metadata as a count (layers, hidden size): past this it is not a model.
MAX_GGUF_COUNT = 2**31
ROUND_TRIP_TEXTS = (
    "Hello world, this is  a test 12345.",
    "def f(x):\n    return x + 1\n\n\n",
    "  leading spaces, tabs\tand unicode: café, naïve, 東京, emoji 🙂",
)


@dataclass(frozen=True)
class GgufInfo:
    path: Path
    architecture: str
    name: str
    tokenizer_model: str  # "gpt2" (byte-level BPE), "llama" (SentencePiece), ...
    pre_tokenizer: str
    quantization: dict[str, int]  # tensor type -> number of tensors
    hidden_size: int | None
    layers: int | None
    chat_template: str | None

    def describe_tensors(self) -> str:
        return "tensors " + ", ".join(f"{n} {t}" for t, n in sorted(self.quantization.items(), key=lambda kv: -kv[1]))

    def describe(self) -> str:
        return (f"{self.path.name}: {self.architecture}, {self.layers} layers, hidden {self.hidden_size}, "
                f"tokenizer {self.tokenizer_model}/{self.pre_tokenizer}, {self.describe_tensors()}")


def _reader(path: Path) -> Any:
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ModelPreparationError("reading a GGUF file needs the `gguf` package (pip install gguf)") from None
    try:
        gguf_header(path)  # counts the file cannot hold are refused before the reader loops over them
    except HarnessInputError as e:
        detail = HarnessInputError(None, e.field, e.value, e.message).line()
        raise ModelPreparationError(f"'{path}' is not a readable GGUF file: {detail}") from None
    try:
        return GGUFReader(path)
    except Exception as e:  # noqa: BLE001 - any parse failure is one line naming the file
        raise ModelPreparationError(f"'{path}' is not a readable GGUF file: {type(e).__name__}: "
                                    f"{str(e)[:300]}") from None


def _value(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return default
    try:
        return field.contents()
    except Exception as e:  # noqa: BLE001 - text that is not UTF-8, parts that do not fit: one line naming the key
        raise ModelPreparationError(f"'{Path(reader.data.filename).name}': metadata {key} is not readable: "
                                    f"{type(e).__name__}: {str(e)[:200]}") from None


def _text(reader: Any, key: str, default: str | None) -> str | None:
    """A metadata value that must be text (a name, a tokenizer kind, a chat template)."""
    v = _value(reader, key, default)
    if v is not None and not isinstance(v, str):
        raise ModelPreparationError(f"'{Path(reader.data.filename).name}': metadata {key} is "
                                    f"{type(v).__name__} {str(v)[:60]}, not text")
    return v


def _count(reader: Any, key: str) -> int | None:
    """A metadata value that must be a count (layers, hidden size): a whole number 1 to MAX_GGUF_COUNT."""
    v = _value(reader, key)
    if v is None:
        return None
    if type(v) is not int or not 0 < v <= MAX_GGUF_COUNT:
        raise ModelPreparationError(f"'{Path(reader.data.filename).name}': metadata {key} is {str(v)[:60]}, not a "
                                    f"count (a whole number 1 to {MAX_GGUF_COUNT})")
    return v


def _list(reader: Any, key: str, kind: type, default: list[Any] | None = None) -> list[Any]:
    """A metadata array whose every item is of `kind` (tokens, token types, merges)."""
    v = _value(reader, key, default)
    if not isinstance(v, list) or not all(type(x) is kind for x in v):
        raise ModelPreparationError(f"'{Path(reader.data.filename).name}': metadata {key} is not a list of "
                                    f"{kind.__name__} values")
    return v


def read_info(path: Path, cache_dir: Path | None = None) -> GgufInfo:
    """The facts about a GGUF file the harness uses, without loading its weights. With `cache_dir`, kept there by
    the file's content fingerprint: the gguf package reads every vocabulary entry of the header one by one (3.6 s
    for SmolLM2's 49152 tokens and merges), and a file cut short or changed has another fingerprint, so it is
    parsed (and refused) again."""
    if cache_dir is None:
        return _parsed_info(path)
    from dataclasses import asdict

    from harness.core.digest import digest
    from harness.models.cache import fingerprint_file, read_json, write_json_whole

    kept = cache_dir / "gguf-info" / f"{digest({'file': fingerprint_file(path), 'version': 1})}.json"
    found = read_json(kept)
    if isinstance(found, dict):
        try:
            return GgufInfo(**{**found, "path": path})
        except TypeError:
            pass  # an older or damaged record: parsed again
    info = _parsed_info(path)
    write_json_whole(kept, {**asdict(info), "path": str(path)})
    return info


def _parsed_info(path: Path) -> GgufInfo:
    r = _reader(path)
    arch = _text(r, "general.architecture", "unknown") or "unknown"
    quant: dict[str, int] = {}
    for t in r.tensors:
        quant[t.tensor_type.name] = quant.get(t.tensor_type.name, 0) + 1
    return GgufInfo(path=path, architecture=arch, name=_text(r, "general.name", path.stem) or path.stem,
                    tokenizer_model=_text(r, "tokenizer.ggml.model", "none") or "none",
                    pre_tokenizer=_text(r, "tokenizer.ggml.pre", "default") or "default", quantization=quant,
                    hidden_size=_count(r, f"{arch}.embedding_length"), layers=_count(r, f"{arch}.block_count"),
                    chat_template=_text(r, "tokenizer.chat_template", None))


def hf_tokenizer(path: Path) -> Any:
    """A PreTrainedTokenizerFast equal to the GGUF file's own BPE tokenizer."""
    r = _reader(path)
    kind, pre = _text(r, "tokenizer.ggml.model", "none"), _text(r, "tokenizer.ggml.pre", "default")
    if kind != "gpt2":
        raise ModelPreparationError(
            f"'{path.name}': tokenizer kind '{kind}' is not converted by the harness (only byte-level BPE, 'gpt2'); "
            "measure the file through openvino-genai's own GGUF reader instead (precision: gguf)")
    if pre not in GPT2_PRE_TOKENIZERS:
        raise ModelPreparationError(
            f"'{path.name}': pre-tokenizer '{pre}' is not known to the harness (known: "
            f"{', '.join(sorted(GPT2_PRE_TOKENIZERS))}); measure the file through openvino-genai's own GGUF reader "
            "instead (precision: gguf)")
    tokens = _list(r, "tokenizer.ggml.tokens", str)
    types = _list(r, "tokenizer.ggml.token_type", int, [1] * len(tokens))
    merges = [tuple(m.split(" ", 1)) for m in _list(r, "tokenizer.ggml.merges", str, [])]
    if len(types) != len(tokens) or any(len(m) != 2 for m in merges):
        raise ModelPreparationError(f"'{path.name}': {len(types)} token types for {len(tokens)} tokens, or a merge "
                                    "that is not two tokens apart: not a tokenizer the harness can rebuild")
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    try:
        tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, ignore_merges=False))
    except Exception as e:  # noqa: BLE001 - the tokenizers library's own reason, one line
        raise ModelPreparationError(f"'{path.name}': its vocabulary does not make a BPE tokenizer: "
                                    f"{str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None
    steps = [pre_tokenizers.Digits(individual_digits=True)] if GPT2_PRE_TOKENIZERS[pre] else []
    tok.pre_tokenizer = pre_tokenizers.Sequence([*steps, pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                                                   use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types, strict=True) if ty in (CONTROL, USER_DEFINED)])

    def special(key: str) -> str | None:
        i = _value(r, f"tokenizer.ggml.{key}_token_id")
        return tokens[i] if type(i) is int and 0 <= i < len(tokens) else None

    bos, eos = special("bos"), special("eos")
    # BPE GGUF files say whether BOS is prepended; without the key llama.cpp prepends it for BPE vocabularies
    if bool(_value(r, "tokenizer.ggml.add_bos_token", True)) and bos is not None:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, tokens.index(bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=special("unknown"),
                                   pad_token=special("padding"), chat_template=_text(r, "tokenizer.chat_template", None),
                                   clean_up_tokenization_spaces=False)


def check_round_trip(tok: Any, name: str) -> None:
    """Refuse a tokenizer that does not give back the text it encoded (the fault an HF conversion hid)."""
    for text in ROUND_TRIP_TEXTS:
        back = tok.decode(tok(text, add_special_tokens=False)["input_ids"])
        if back != text:
            raise ModelPreparationError(f"the tokenizer converted from '{name}' does not round-trip text: "
                                        f"{text!r} came back as {back!r}")


def convert_to_hf(path: Path, out: Path, log: Callable[[str], None]) -> None:
    """GGUF file -> a Hugging Face folder in the existing directory `out` (f32 weights, rebuilt tokenizer)."""
    info = read_info(path)
    log(f"converting {info.describe()}")
    if info.architecture not in TRANSFORMERS_ARCHITECTURES:
        raise ModelPreparationError(
            f"'{path.name}': architecture '{info.architecture}' is not read by transformers' GGUF loader; measure "
            "the file through openvino-genai's own GGUF reader instead (precision: gguf)")
    tok = hf_tokenizer(path)  # first: a tokenizer it cannot build fails before the slow weight load
    check_round_trip(tok, path.name)
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        raise ModelPreparationError("converting GGUF needs the export extra (transformers, torch)") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as e:  # noqa: BLE001 - the loader's own message, one line
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise ModelPreparationError(f"transformers could not load '{path.name}': {first.strip()[:300]}; measure "
                                    "the file through openvino-genai's own GGUF reader instead (precision: gguf)") from None
    model.save_pretrained(out)
    tok.save_pretrained(out)
    # generation_config.json: the file's own special tokens (transformers copies them from config.json)
    gen = out / "generation_config.json"
    cfg = load_json(gen, "model file", MAX_MODEL_CONFIG_BYTES) if gen.is_file() else {}
    cfg.update({k: v for k, v in (("bos_token_id", tok.bos_token_id), ("eos_token_id", tok.eos_token_id),
                                  ("pad_token_id", tok.pad_token_id)) if v is not None})
    gen.write_text(json.dumps(cfg, indent=2) + "\n")


def cut_layers(src: Path, out: Path, layers: int) -> None:
    """A Llama-style Hugging Face model's first `layers` decoder layers with its embeddings, final norm and head:
    a draft that shares the model's tokenizer exactly."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    decoder = getattr(model, "model", None)
    if decoder is None or not hasattr(decoder, "layers"):
        raise ModelPreparationError(f"'{src}': no decoder layers to cut (a Llama-style model is needed)")
    total = len(decoder.layers)
    if not 1 <= layers < total:
        raise ModelPreparationError(f"'{src}' has {total} layers: a cut keeps 1 to {total - 1}, not {layers}")
    decoder.layers = decoder.layers[:layers]
    model.config.num_hidden_layers = layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:layers]
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    for name in ("generation_config.json", "chat_template.jinja"):
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
