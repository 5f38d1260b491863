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


@dataclass
class _Request:
    prompt_ids: list[int]
    config: Any
    sink: TokenSink
    handle: Any = None
    produced: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Engine:
    """Owns the pipeline and its stepping thread; `submit` is safe from any thread."""

    def __init__(self, pipe: Any) -> None:
        import openvino_genai as ov_genai

        self.pipe = pipe
        self.tokenizer = pipe.get_tokenizer()
        self._running_status = ov_genai.GenerationStatus.RUNNING
        self._incoming: queue.Queue[_Request] = queue.Queue()
        self._active: list[_Request] = []
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cb-engine", daemon=True)
        self.steps = 0
        self._thread.start()

    def submit(self, prompt_ids: list[int], config: Any, sink: TokenSink) -> None:
        self._incoming.put(_Request(prompt_ids, config, sink))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _admit(self, req: _Request) -> None:
        import numpy as np
        import openvino as ov

        ids = ov.Tensor(np.asarray([req.prompt_ids], dtype=np.int64))
        try:
            req.handle = self.pipe.add_request(next(self._ids), ids, req.config)
        except Exception as e:  # noqa: BLE001 - a bad request fails alone
            req.sink([], True, f"error: {type(e).__name__}: {e}")
            return
        self._active.append(req)

    def _loop(self) -> None:
        while not self._stop.is_set():
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
                    req.sink(new, done, reason)
                if not done:
                    still.append(req)
            self._active = still
