"""A fixed multilingual corpus for tokenizer parity: the same texts on every machine.

Edge cases on purpose: the empty string and whitespace only, many scripts, combining marks,
emoji with modifiers and zero-width joiners, control-ish characters, code, and long inputs."""

from __future__ import annotations

_BASE = (
    "",
    " ",
    "   leading and trailing spaces   ",
    "\n",
    "tabs\tand\nnew\r\nlines\n\n",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Don't stop: it's 3.14159 > 2.71828, isn't it?",
    "Grüße aus Köln: Straße, Mädchen, Übermut.",
    "Ça coûte 12,50 € — déjà vu, naïve façade.",
    "¿Dónde está la biblioteca? ¡Aquí!",
    "Привет, как дела? Съешь ещё этих мягких французских булок.",
    "Γειά σου Κόσμε· η γρήγορη καφέ αλεπού.",
    "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם, מה שלומך?",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "你好，世界！今天天气很好。",
    "こんにちは世界。カタカナとひらがなと漢字。",
    "안녕하세요 세계, 반갑습니다.",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "Tiếng Việt có dấu: Hà Nội, Sài Gòn, phở bò.",
    "e\u0301 vs \u00e9, n\u0303 vs \u00f1, combining marks a\u0308\u0304.",
    "emoji: 😀😃😄 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️‍🔥",
    "zero\u200bwidth\u200cjoiners\u200dand\ufeffBOM",
    "math: ∀x∈ℝ, ∑ᵢ xᵢ² ≤ ∞; ∫₀¹ f(x) dx ≈ ½",
    "mixed: English, русский, 中文, العربية, हिन्दी and 😀 in one line.",
    "def f(x: int) -> int:\n    return x ** 2  # square\n",
    '{"key": [1, 2, 3], "nested": {"a": null, "b": true}}',
    "https://example.com/path?query=1&other=two#frag",
    "user@example.org, +1 (555) 010-0199, 2026-11-24T22:30:00Z",
    "0 1 22 333 4444 55555 666666 7777777 88888888 999999999 1234567890",
    "ALL CAPS SHOUTING AND lower case whispering",
    "repeated!!!!!!!!!! ?????????? ..........",
    "<s> </s> <unk> <pad> look like special tokens but are text",
    "a" * 300,
)


def tokenizer_corpus(long_chars: int = 20000) -> list[str]:
    """The parity corpus: the fixed texts plus two long inputs built from them."""
    joined = " ".join(t for t in _BASE if t.strip())
    long_text = (joined + " ") * (long_chars // len(joined) + 1)
    return [*_BASE, long_text[:long_chars], ("🙂 字 é " * (long_chars // 8))[:long_chars]]
