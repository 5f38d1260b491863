"""What serving requests contain beyond one prompt: a shared system prompt, conversations, images.

- Shared prefixes: `prefix_groups` distinct system prompts of `shared_prefix_tokens` tokens, made like the
  prompts (exact under the scenario's tokenizer, or calibrated on the server's usage counts) from an index
  range of their own (PREFIX_INDEX_BASE), identical across the requests that share one, so a server's prefix
  cache can reuse their KV blocks.
- Conversations: request i is turn i mod T of conversation i div T; its request carries the conversation's
  earlier user turns and the answers the server actually gave to them (recorded as each turn ends). The
  closed loop hands a conversation's turns to one client in order (it reads `turns` off the request maker),
  so turn k is made only after turn k-1 has been answered.
- Images: seeded synthetic PNGs (the vlm kind's picture) as base64 data URLs, the form OVMS accepts in
  OpenAI image_url content parts; made before the load, so encoding costs the load generator nothing.

`RequestMaker` wraps the plain per-request input (`inputs(i)`, made by the serving backend) with all three."""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.load.client import RequestInput, RequestOutput, Turn

# shared prefixes are synthetic prompts from an index range the user prompts (0, 1, 2, ...) never reach
PREFIX_INDEX_BASE = 10_000_000
# a trace's prompt blocks (Mooncake hash ids) are synthetic prompts from a range of their own too
BLOCK_INDEX_BASE = 20_000_000
# distinct image sets made before a load (requests cycle through them): bounds the seconds spent encoding
MAX_IMAGE_SETS = 64


def png_data_url(index: int, size: int) -> str:
    """A deterministic synthetic picture (harness.core.synthetic_images) as a PNG data URL."""
    from PIL import Image

    from harness.core.synthetic_images import synthetic_image

    buf = io.BytesIO()
    # fast compression: a 1024-pixel picture takes ~0.1 s instead of ~0.3 s, the data ~1.5x larger
    Image.fromarray(synthetic_image(index, size)).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_sets(count: int, per_request: int, size: int) -> list[tuple[str, ...]]:
    """`min(count, MAX_IMAGE_SETS)` distinct sets of `per_request` images each (no two images alike)."""
    return [tuple(png_data_url(k * per_request + j, size) for j in range(per_request))
            for k in range(min(count, MAX_IMAGE_SETS))]


@dataclass
class BlockPrompts:
    """Prompts made of a trace's hash blocks: block h is the text `make(BLOCK_INDEX_BASE + h, block_tokens)`
    wherever it appears (made once), a last partial block the text of its id at the tokens left, and the rest
    of the input length (past the listed blocks) text of the request's own."""

    make: Callable[[int, int], str]
    block_tokens: int
    _made: dict[tuple[int, int], str] = field(default_factory=dict)

    def _block(self, h: int, tokens: int) -> str:
        if (h, tokens) not in self._made:
            self._made[(h, tokens)] = self.make(BLOCK_INDEX_BASE + h, tokens)
        return self._made[(h, tokens)]

    def __call__(self, index: int, tokens: int, blocks: tuple[int, ...]) -> str:
        parts, left = [], tokens
        for h in blocks:
            if left <= 0:
                break
            parts.append(self._block(h, min(self.block_tokens, left)))
            left -= self.block_tokens
        if left > 0:
            parts.append(self.make(index, left))
        # words are stripped at their ends: a newline keeps the last word of one block off the next one's first
        return "".join(p if p.endswith(("\n", " ")) or k == len(parts) - 1 else p + "\n" for k, p in enumerate(parts))


@dataclass
class RequestMaker:
    """`inputs(i)` for the load generator: the plain request i (`base`) with the shared prefix of its
    conversation's group, its conversation's history and its images. Warm-up requests (i < 0) are first
    turns of conversations of their own. `record` must see every measured result (the serving backend's
    on_result calls it) before the conversation's next turn is made."""

    base: Callable[[int], RequestInput]
    turns: int = 1  # the closed loop runs this many consecutive requests in order on one client
    prefixes: list[str] = field(default_factory=list)
    images: list[tuple[str, ...]] = field(default_factory=list)
    _user: dict[int, Turn] = field(default_factory=dict)  # request index -> the user turn it sent (no answer)
    _answer: dict[int, str] = field(default_factory=dict)  # request index -> the text the server answered

    def position(self, i: int) -> tuple[int, int]:
        """(conversation, turn), both from 0."""
        return (i // self.turns, i % self.turns) if i >= 0 else (i, 0)

    def history(self, i: int) -> tuple[Turn, ...]:
        conv, turn = self.position(i)
        first = conv * self.turns
        # a turn that failed answered nothing (or part of an answer): the conversation goes on with what came
        return tuple(dataclasses.replace(self._user.get(j, Turn("", "")), answer=self._answer.get(j, ""))
                     for j in range(first, first + turn))

    def __call__(self, i: int) -> RequestInput:
        inp = self.base(i)
        conv, _ = self.position(i)
        images = self.images[i % len(self.images)] if self.images else ()
        made = dataclasses.replace(
            inp, system=self.prefixes[conv % len(self.prefixes)] if self.prefixes else "",
            history=self.history(i) if self.turns > 1 else (), images=images)
        if self.turns > 1 and i >= 0:
            self._user[i] = Turn(inp.prompt, "", images)
        return made

    def record(self, out: RequestOutput) -> None:
        if self.turns > 1 and out.index >= 0:
            self._answer[out.index] = out.text

    def readings(self, i: int) -> dict[str, float]:
        """What a request's Sample records about its place: conversation and turn (from 1), with turns."""
        if self.turns <= 1:
            return {}
        conv, turn = self.position(i)
        return {"conversation": float(conv), "turn": float(turn + 1)}
