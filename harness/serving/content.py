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

from harness.serving.client import RequestInput, RequestOutput

# shared prefixes are synthetic prompts from an index range the user prompts (0, 1, 2, ...) never reach
PREFIX_INDEX_BASE = 10_000_000
# distinct image sets made before a load (requests cycle through them): bounds the seconds spent encoding
MAX_IMAGE_SETS = 64


def png_data_url(index: int, size: int) -> str:
    """A deterministic synthetic picture (harness.backends.genai_vlm.synthetic_image) as a PNG data URL."""
    from PIL import Image

    from harness.backends.genai_vlm import synthetic_image

    buf = io.BytesIO()
    # fast compression: a 1024-pixel picture takes ~0.1 s instead of ~0.3 s, the data ~1.5x larger
    Image.fromarray(synthetic_image(index, size)).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_sets(count: int, per_request: int, size: int) -> list[tuple[str, ...]]:
    """`min(count, MAX_IMAGE_SETS)` distinct sets of `per_request` images each (no two images alike)."""
    return [tuple(png_data_url(k * per_request + j, size) for j in range(per_request))
            for k in range(min(count, MAX_IMAGE_SETS))]


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
    _user: dict[int, str] = field(default_factory=dict)  # request index -> the user turn it sent
    _answer: dict[int, str] = field(default_factory=dict)  # request index -> the text the server answered

    def position(self, i: int) -> tuple[int, int]:
        """(conversation, turn), both from 0."""
        return (i // self.turns, i % self.turns) if i >= 0 else (i, 0)

    def history(self, i: int) -> tuple[tuple[str, str], ...]:
        conv, turn = self.position(i)
        first = conv * self.turns
        # a turn that failed answered nothing (or part of an answer): the conversation goes on with what came
        return tuple((self._user.get(j, ""), self._answer.get(j, "")) for j in range(first, first + turn))

    def __call__(self, i: int) -> RequestInput:
        inp = self.base(i)
        conv, _ = self.position(i)
        made = dataclasses.replace(
            inp, system=self.prefixes[conv % len(self.prefixes)] if self.prefixes else "",
            history=self.history(i) if self.turns > 1 else (),
            images=self.images[i % len(self.images)] if self.images else ())
        if self.turns > 1 and i >= 0:
            self._user[i] = inp.prompt
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
