"""Faults a worker can be told to inject (`harness run --fault KEY=KIND`), to prove that failures are contained
and that checks catch wrong outputs. Test-only: the worker imports this module only where the environment
names it (HARNESS_FAULTS_MODULE=tests.faults, set by tests/conftest.py).

Process faults: "crash" (SIGSEGV), "hang" (sleeps forever). Output faults make openvino_genai.LLMPipeline a
pipeline that is wrong in one way, as a buggy decoding path would be: "change_token" changes the middle
generated token, "drop_token" drops it, "other_prompt" answers the second half of the prompt instead."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

PROCESS_FAULTS = ("crash", "hang")
OUTPUT_FAULTS = ("change_token", "drop_token", "other_prompt")
FAULTS = PROCESS_FAULTS + OUTPUT_FAULTS


def inject(fault: str | None) -> None:
    """Apply `fault` in this worker process (before the backend builds its pipeline)."""
    if fault is None:
        return
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
    if fault == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif fault == "hang":
        while True:
            time.sleep(3600)
    else:
        import openvino_genai

        real = openvino_genai.LLMPipeline
        openvino_genai.LLMPipeline = lambda *a, **kw: _FaultyPipeline(real(*a, **kw), fault)


def corrupt(ids: list[int], fault: str) -> list[int]:
    """`ids` with the middle token changed or dropped."""
    if not ids or fault not in ("change_token", "drop_token"):
        return list(ids)
    k = len(ids) // 2
    if fault == "drop_token":
        return ids[:k] + ids[k + 1:]
    return ids[:k] + [ids[k] - 1 if ids[k] > 4 else ids[k] + 1] + ids[k + 1:]  # ids < 4 are special tokens here


class _Result:
    """A generate() result whose texts are replaced; everything else is the real result's."""

    def __init__(self, real: Any, texts: list[str]) -> None:
        self._real = real
        self.texts = texts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _FaultyPipeline:
    def __init__(self, pipe: Any, fault: str) -> None:
        self._pipe = pipe
        self._fault = fault

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)

    def generate(self, inputs: Any, config: Any = None, streamer: Any = None, **kwargs: Any) -> Any:
        from harness.execute.backends.genai_common import (
            timing_streamer_class,  # the worker's id-collecting streamer
        )

        prompts = [inputs] if isinstance(inputs, str) else list(inputs)
        if self._fault == "other_prompt":
            prompts = [p[len(p) // 2:] for p in prompts]
        collected = timing_streamer_class()()
        real = self._pipe.generate(prompts, config, collected, **kwargs)
        ids = corrupt(collected.ids, self._fault)
        if streamer is not None:
            for token in ids:
                streamer.write(token)
            streamer.end()
        text = self._pipe.get_tokenizer().decode(ids, skip_special_tokens=True)
        return text if isinstance(inputs, str) else _Result(real, [text])
