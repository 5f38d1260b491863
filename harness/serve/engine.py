"""One ContinuousBatchingPipeline driven by one thread, shared by every request of the server.

openvino-genai's pipeline is stepped explicitly: the engine thread adds queued requests, calls
step() while anything is unfinished, and hands each request's new tokens to its consumer (an
asyncio queue in the server) as soon as the step that produced them returns."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A token callback gets (new token ids, finished, finish reason or None).
TokenSink = Callable[[list[int], bool, str | None], None]


@dataclass(eq=False)
class Ticket:
    """One submitted request; pass it to `Engine.cancel` to stop its generation."""

    prompt_ids: list[int]
    config: Any
    sink: TokenSink
    handle: Any = None
    produced: int = 0
    cancelled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # a VLM's request: the templated prompt text and its images (ov.Tensor each); the pipeline tokenizes it,
    # and `prompt_tokens` (image tokens included) is set from its perf metrics before the last delivery
    prompt_text: str | None = None
    images: list[Any] = field(default_factory=list)
    prompt_tokens: int | None = None


class Engine:
    """Owns the pipeline and its stepping thread; `submit` is safe from any thread."""

    def __init__(self, pipe: Any) -> None:
        import openvino_genai as ov_genai

        self.pipe = pipe
        self.tokenizer = pipe.get_tokenizer()
        self._running_status = ov_genai.GenerationStatus.RUNNING
        self._incoming: queue.Queue[Ticket] = queue.Queue()
        self._cancelled: queue.Queue[Ticket] = queue.Queue()
        self._cancel_all = threading.Event()
        self._active: list[Ticket] = []
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cb-engine", daemon=True)
        self.steps = 0
        self._thread.start()

    def submit(self, prompt_ids: list[int], config: Any, sink: TokenSink, prompt_text: str | None = None,
               images: list[Any] | None = None) -> Ticket:
        """Queue a request: token ids, or (a VLM's pipeline) `prompt_text` with its `images`."""
        ticket = Ticket(prompt_ids, config, sink, prompt_text=prompt_text, images=list(images or []))
        self._incoming.put(ticket)
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Stop a request's generation; its sink hears a last (no tokens, finished, "cancelled")."""
        self._cancelled.put(ticket)

    def cancel_all(self) -> None:
        """Stop every request, queued or running (the server is shutting down)."""
        self._cancel_all.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for req in self._active:  # nothing more is stepped: free the pipeline's slots
            self._drop(req)
        self._active.clear()

    @staticmethod
    def _drop(req: Ticket) -> None:
        if req.cancelled:
            return
        req.cancelled = True
        if req.handle is not None:
            # cancel() since 2025.x; drop() before
            (getattr(req.handle, "cancel", None) or req.handle.drop)()
        req.sink([], True, "cancelled")

    def _reap(self) -> None:
        if self._cancel_all.is_set():
            self._cancel_all.clear()
            while True:
                try:
                    self._drop(self._incoming.get_nowait())
                except queue.Empty:
                    break
            for req in self._active:
                self._drop(req)
            self._active.clear()
        while True:
            try:
                req = self._cancelled.get_nowait()
            except queue.Empty:
                return
            self._drop(req)  # not admitted yet: _admit skips it
            if req in self._active:
                self._active.remove(req)

    def _admit(self, req: Ticket) -> None:
        if req.cancelled:
            return
        import numpy as np
        import openvino as ov

        try:
            if req.prompt_text is not None:
                req.handle = self.pipe.add_request(next(self._ids), req.prompt_text, req.images, req.config)
            else:
                ids = ov.Tensor(np.asarray([req.prompt_ids], dtype=np.int64))
                req.handle = self.pipe.add_request(next(self._ids), ids, req.config)
        except Exception as e:  # noqa: BLE001 - a bad request fails alone
            req.sink([], True, f"error: {type(e).__name__}: {e}")
            return
        self._active.append(req)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._reap()
            try:
                # block only when idle; while generating, just drain what arrived
                req = self._incoming.get(timeout=0.05) if not self._active else self._incoming.get_nowait()
                self._admit(req)
                continue
            except queue.Empty:
                pass
            if not self._active:
                continue
            try:
                self.pipe.step()
            except Exception as e:  # noqa: BLE001 - the step failed for everyone in it
                for req in self._active:
                    req.sink([], True, f"error: {type(e).__name__}: {e}")
                self._active.clear()
                continue
            self.steps += 1
            still = []
            for req in self._active:
                new: list[int] = []
                if req.handle.can_read():
                    new = [int(t) for out in req.handle.read().values() for t in out.generated_ids]
                done = req.handle.get_status() != self._running_status
                if done:
                    while req.handle.can_read():  # tokens of the final step
                        new += [int(t) for out in req.handle.read().values() for t in out.generated_ids]
                req.produced += len(new)
                if new or done:
                    reason = None
                    if done:
                        limit = req.config.max_new_tokens
                        reason = "length" if limit and req.produced >= limit else "stop"
                        if req.prompt_text is not None:
                            req.prompt_tokens = int(req.handle.get_perf_metrics().get_num_input_tokens())
                    req.sink(new, done, reason)
                if not done:
                    still.append(req)
            self._active = still
