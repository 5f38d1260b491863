"""Synthetic prompts of an exact input length, the same on every machine.

Text is drawn from a fixed word list with a seeded numpy generator (PCG64 is stable across
platforms and numpy versions), so a prompt depends only on (index, length, tokenizer)."""

from __future__ import annotations

from collections.abc import Callable

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


def _text(index: int, n_words: int) -> str:
    rng = np.random.default_rng(1_000_003 + index)
    words = rng.choice(len(_WORDS), size=n_words)
    return " ".join(_WORDS[i] for i in words)


def synthetic_prompt(
    index: int,
    n_tokens: int,
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
) -> str:
    """A prompt whose token count under `encode` is `n_tokens` (or the closest reachable)."""
    n_words = max(8, n_tokens * 2)
    ids = encode(_text(index, n_words))
    while len(ids) < n_tokens:
        n_words *= 2
        ids = encode(_text(index, n_words))
    best, best_err = "", None
    # Decoding a prefix and re-encoding can merge tokens at the cut; try a few cut points.
    for cut in range(n_tokens, max(0, n_tokens - 6), -1):
        text = decode(ids[:cut]).strip()
        err = abs(len(encode(text)) - n_tokens)
        if best_err is None or err < best_err:
            best, best_err = text, err
        if err == 0:
            break
    return best
