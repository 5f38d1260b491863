"""What counts prompt tokens for a serving cell: the suite's model's tokenizer, a tokenizer folder (OpenVINO or
Hugging Face), a Hugging Face tokenizer name, or nothing (`usage`): then prompt lengths are calibrated on the
server's own `usage.prompt_tokens`, so a remote server needs no local model at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import ModelPreparationError
from harness.core.prompts import PromptStyle, synthetic_prompt, synthetic_text
from harness.core.schema import CellSpec
from harness.kinds.serving import ServingParams

USAGE = "usage"
MODEL = "model"


@dataclass(frozen=True)
class PromptTokenizer:
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]


def _openvino(folder: Path) -> PromptTokenizer:
    import openvino_genai as ov_genai

    tok = ov_genai.Tokenizer(str(folder))
    return PromptTokenizer(
        encode=lambda text: [int(x) for x in tok.encode(text, add_special_tokens=False).input_ids.data[0]],
        decode=lambda ids: tok.decode(ids, skip_special_tokens=True))


def _hugging_face(name: str) -> PromptTokenizer:
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        raise ModelPreparationError(f"tokenizer {name!r} needs the transformers package (pip install "
                                    "'ov-genai-harness[export]'), or give a folder with openvino_tokenizer.xml, or "
                                    "`usage`") from e
    try:
        tok = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise ModelPreparationError(f"tokenizer {name!r} is neither a tokenizer folder nor a Hugging Face tokenizer "
                                    f"that loads here: {str(e).splitlines()[0][:200]}") from None
    return PromptTokenizer(encode=lambda text: list(tok.encode(text, add_special_tokens=False)),
                           decode=lambda ids: tok.decode(ids, skip_special_tokens=True))


def load_prompt_tokenizer(source: str, model_dir: Path | None) -> PromptTokenizer | None:
    """The tokenizer `source` names (None for `usage`); `model` is the prepared model's folder."""
    if source == USAGE:
        return None
    if source == MODEL:
        if model_dir is None:
            raise ModelPreparationError("tokenizer `model` needs the suite's model prepared locally")
        return _openvino(model_dir)
    folder = Path(source)
    if folder.is_dir():
        if (folder / "openvino_tokenizer.xml").is_file():
            return _openvino(folder)
        if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json",
                                                    "tokenizer.model")):
            raise ModelPreparationError(f"tokenizer folder {folder} holds neither openvino_tokenizer.xml nor "
                                        "Hugging Face tokenizer files")
    elif folder.is_absolute() or source.startswith("."):
        raise ModelPreparationError(f"tokenizer folder {source} does not exist")
    return _hugging_face(source)


@dataclass(frozen=True)
class UsageCalibration:
    """prompt_tokens ≈ overhead + per_char × characters, from two probe requests on prefixes of one text (a
    character, not a word or code line, so that a prompt can be cut to within a token or two)."""

    overhead: float
    per_char: float

    def chars_for(self, tokens: int) -> int:
        return max(1, round((tokens - self.overhead) / self.per_char))


# the probe texts: one character (its count is the overhead plus one token), and four texts' starts of this
# many characters (their tokens per character, averaged over texts: a single text runs denser or sparser)
PROBE_TEXTS, PROBE_CHARS = 4, 400


def _text_of_chars(style: PromptStyle, index: int, chars: int) -> str:
    """Synthetic text `index` cut to about `chars` characters, at a space or line end when one is near."""
    units = chars // (30 if style == "code" else 5) + 8
    text = synthetic_text(style, index, units)
    while len(text) < chars:
        units *= 2
        text = synthetic_text(style, index, units)
    cut = text[:chars]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[:space] if space > 0.9 * chars else cut


def calibrate(count_tokens: Callable[[str], int | None], style: PromptStyle) -> UsageCalibration | None:
    """Fit the server's prompt token count against prompt length in characters with two probe requests
    (None: the server reports no usage). `count_tokens(text)` sends one request and returns its
    usage.prompt_tokens."""
    tiny = _text_of_chars(style, 0, 1)
    long = "\n".join(_text_of_chars(style, k, PROBE_CHARS) for k in range(1, PROBE_TEXTS + 1))
    a, b = count_tokens(tiny), count_tokens(long)
    if a is None or b is None or b <= a:
        return None
    overhead = a - 1  # the template and special tokens around a one-token text
    return UsageCalibration(overhead=overhead, per_char=(b - overhead) / len(long))


def usage_prompt(index: int, tokens: int, calibration: UsageCalibration | None, style: PromptStyle) -> str:
    """A synthetic prompt of about `tokens` tokens on the server's tokenizer (without usage counts: a word,
    or a quarter line of code, a token; the lengths are then only nominal)."""
    if calibration is None:
        return synthetic_text(style, index, max(1, tokens // (4 if style == "code" else 1)))
    return _text_of_chars(style, index, calibration.chars_for(tokens))


def exact_prompt(index: int, tokens: int, tok: PromptTokenizer, style: PromptStyle) -> str:
    return synthetic_prompt(index, tokens, tok.encode, tok.decode, style)


def check_remote_tokenizer(cell: CellSpec) -> None:
    """A remote server's cell prepares no model; the tokenizer it names instead is loaded once in its prepare
    phase, so a bad one fails the cell before any request is sent."""
    load_prompt_tokenizer(ServingParams.of(cell).tokenizer_source(remote=True), None)
