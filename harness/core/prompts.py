"""Synthetic prompts of an exact input length, the same on every machine.

Three styles: "code", Python-like source composed from statement templates and identifiers (what the
built-in models were trained on, and what code assistants are asked), "words", English words at
random, and "instruct", a request to a chat model about such code (an instruction line, then the code),
for real instruction-tuned models whose answers quote the code they were given. Both are drawn with a seeded numpy generator (PCG64 is stable across platforms and numpy
versions), so a prompt depends only on (style, index, length, tokenizer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

_WORDS = (
    "the of and to in is that for it as with was on be by this are from at or an which have not "
    "they but one all were can their has been there more when will would who so if out about what "
    "time some into only other new could these two may first then do any like my now over such our "
    "man me even most made after also did many before must through back years where much your way "
    "well down should because each just those people how too little state good very make world still "
    "own see men work long get here between both life being under never day same another know while "
    "last might us great old year off come since against go came right used take three system model "
    "memory device latency token prompt engine compile cache layer kernel thread vector matrix tensor "
    "window river mountain garden letter morning city music paper story history science language "
    "number question answer reason example problem process energy water light sound color animal"
).split()


PromptStyle = Literal["code", "words", "instruct"]
_INSTRUCTIONS = (
    "Rewrite the following Python code with a comment above every function and class:",
    "Explain what the following Python code does, quoting each line you explain:",
    "Find the bugs in the following Python code and show the corrected code:",
    "Add type hints to the following Python code and print the whole result:",
)

_NAMES = ("name", "value", "path", "items", "data", "key", "result", "size", "count", "line", "text", "node",
          "index", "offset", "buffer", "config", "options", "parts", "entry", "record", "token", "stream")
_VERBS = ("get", "set", "read", "write", "parse", "format", "load", "find", "check", "update", "make", "split",
          "close", "open", "add", "remove", "build", "convert", "handle", "run")
_CLASSES = ("Parser", "Reader", "Writer", "Handler", "Buffer", "Config", "Record", "Queue", "Cache", "Node")
_ERRORS = ("ValueError", "TypeError", "KeyError", "RuntimeError", "OSError")
# A statement template: a list of lines; "{i}" is the current indent; names are filled per use.
_BLOCKS = (
    ["{i}def {verb}_{a}(self, {a}, {b}=None):", '{i}    """{Verb} the {a} from {b}."""',
     "{i}    if {b} is None:", "{i}        {b} = self.{b}", "{i}    return self._{verb}({a}, {b})"],
    ["{i}def {verb}_{a}({a}, {b}):", "{i}    {c} = []", "{i}    for {d} in {a}:",
     "{i}        if {d} == {b}:", "{i}            continue", "{i}        {c}.append({d})", "{i}    return {c}"],
    ["{i}if not isinstance({a}, {cls}):", "{i}    raise {err}('expected a {cls}, got %r' % ({a},))"],
    ["{i}try:", "{i}    {c} = self.{a}[{b}]", "{i}except {err}:", "{i}    {c} = None"],
    ["{i}class {cls}:", '{i}    """A {a} {cls_lower} for {b} objects."""', "", "{i}    def __init__(self, {a}, {b}=0):",
     "{i}        self.{a} = {a}", "{i}        self.{b} = {b}", "{i}        self._{c} = {{}}"],
    ["{i}with open({a}, 'rb') as {d}:", "{i}    {c} = {d}.read()", "{i}{b} = len({c})"],
    ["{i}for {d}, {c} in enumerate(self.{a}):", "{i}    if {c} is not None and {d} < {b}:",
     "{i}        self.{verb}({c})"],
    ["{i}{c} = {{{a!r}: {a}, {b!r}: {b}}}", "{i}return {c}"],
)


def _code_text(index: int, n_lines: int) -> str:
    rng = np.random.default_rng(2_000_003 + index)
    lines: list[str] = []
    while len(lines) < n_lines:
        block = _BLOCKS[int(rng.integers(len(_BLOCKS)))]
        a, b, c, d = (str(x) for x in rng.choice(_NAMES, size=4, replace=False))
        verb, cls = str(rng.choice(_VERBS)), str(rng.choice(_CLASSES))
        indent = "    " * int(rng.integers(0, 2)) if lines else ""  # the text starts at the left margin
        for line in block:
            lines.append(line.format(i=indent, a=a, b=b, c=c, d=d, verb=verb, Verb=verb.capitalize(), cls=cls,
                                     cls_lower=cls.lower(), err=str(rng.choice(_ERRORS))).rstrip())
        lines.append("")
    return "\n".join(lines[:n_lines])


def _words_text(index: int, n_words: int) -> str:
    rng = np.random.default_rng(1_000_003 + index)
    words = rng.choice(len(_WORDS), size=n_words)
    return " ".join(_WORDS[i] for i in words)


def synthetic_text(style: PromptStyle, index: int, n: int) -> str:
    """Text `index` of `n` words, or `n` lines of code (after an instruction, for "instruct")."""
    if style == "words":
        return _words_text(index, n)
    code = _code_text(index, n)
    return f"{_INSTRUCTIONS[index % len(_INSTRUCTIONS)]}\n\n{code}" if style == "instruct" else code


def synthetic_prompt(
    index: int,
    n_tokens: int,
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
    style: PromptStyle = "code",
) -> str:
    """A prompt whose token count under `encode` is `n_tokens` (or the closest reachable)."""
    n_units = max(8, n_tokens * 2 if style == "words" else n_tokens // 4)  # words, or lines of code
    ids = encode(synthetic_text(style, index, n_units))
    while len(ids) < n_tokens:
        n_units *= 2
        ids = encode(synthetic_text(style, index, n_units))
    best, best_err = "", None
    # Decoding a prefix and re-encoding can merge tokens at the cut (and stripping can drop some); try cut
    # points on both sides.
    for cut in [*range(n_tokens, max(0, n_tokens - 6), -1), *range(n_tokens + 1, min(len(ids), n_tokens + 6) + 1)]:
        # code keeps its trailing newline or indent: it says what comes next
        text = decode(ids[:cut]) if style != "words" else decode(ids[:cut]).strip()
        err = abs(len(encode(text)) - n_tokens)
        if best_err is None or err < best_err:
            best, best_err = text, err
        if err == 0:
            break
    return best
