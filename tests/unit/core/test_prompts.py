"""Synthetic prompts: exact token lengths, the same text on every call, code or words."""

from __future__ import annotations

import pytest

from harness.core.prompts import synthetic_prompt


@pytest.fixture(scope="module")
def tokenizer():
    from harness.models.synthetic import TOKENIZER, build_tokenizer

    return build_tokenizer(TOKENIZER)


def _codec(tok):
    return (lambda text: tok(text, add_special_tokens=False).input_ids), (lambda ids: tok.decode(ids))


@pytest.mark.parametrize("style", ["code", "words"])
@pytest.mark.parametrize("n", [8, 128, 1000])
def test_prompts_have_the_asked_length_and_are_stable(tokenizer, style, n):
    encode, decode = _codec(tokenizer)
    texts = [synthetic_prompt(i, n, encode, decode, style) for i in range(6)]
    lengths = [len(encode(t)) for t in texts]
    # the closest reachable: a cut inside "\n\n" can re-encode one token shorter, the next one longer
    assert all(abs(k - n) <= 1 for k in lengths) and lengths.count(n) >= 4, lengths
    assert len(set(texts)) == 6
    assert texts == [synthetic_prompt(i, n, encode, decode, style) for i in range(6)]


def test_code_prompts_look_like_python(tokenizer):
    encode, decode = _codec(tokenizer)
    text = synthetic_prompt(0, 400, encode, decode, "code")
    assert "def " in text and "return " in text and "\n    " in text
    assert not text[0].isspace()  # starts at the left margin
    words = synthetic_prompt(0, 400, encode, decode, "words")
    assert "\n" not in words and "def " not in words


def test_suites_default_to_code_prompts_and_keep_words_selectable(tmp_path):
    from harness.plan.suite import expand, load_suite

    p = tmp_path / "s.yaml"
    p.write_text("name: s\nmodels: [{name: m, source: synthetic:tiny}]\nscenarios: [{name: g, kind: generate}]\n")
    assert {c.prompts.style for c in expand(load_suite(p)[0], p)} == {"code"}
    p.write_text(p.read_text() + "prompts: {input_tokens: [16], style: words}\n")
    assert {c.prompts.style for c in expand(load_suite(p)[0], p)} == {"words"}
