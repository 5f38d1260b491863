"""The training corpus (Python standard library sources) and the byte-level BPE tokenizer that the Llama
models, the LLaVA text model and the RoBERTa-style cross-encoders share."""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from pathlib import Path

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


TOKENIZER = TokenizerSpec()


def corpus_paths(spec: TokenizerSpec) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return [root / f for f in spec.files if (root / f).is_file()]


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
    tok.train_from_iterator([p.read_text(encoding="utf-8") for p in corpus_paths(spec)], trainer=trainer)
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
