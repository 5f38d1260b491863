"""`/v3/chat/completions` and `/v3/completions` of `harness serve`: both generate on the server's one Engine
and answer in the same shapes, whole or as an SSE stream."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import Request

from harness.core.input_files import MAX_MODEL_CONFIG_BYTES, load_json
from harness.serve.api.protocol import (
    ApiError,
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationFields,
    require_served_model,
)
from harness.serve.api.state import ServerState, State
from harness.serve.api.vision import TEXT_ONLY, decode_image_url, image_tag
from harness.serve.engine import Engine
from harness.serve.server_metrics import Method

log = logging.getLogger("harness.serve")

DISCONNECT_POLL_S = 0.25  # how soon a generation stops after its client went away

router = APIRouter()


def context_length(model_dir: Path) -> int | None:
    """The model's context window from its config.json (a vision-language model's: its text_config's; None
    when it does not say); HarnessInputError naming the file when it cannot be read."""
    config = Path(model_dir) / "config.json"
    if not config.is_file():
        return None
    top = load_json(config, "model file", MAX_MODEL_CONFIG_BYTES)
    for cfg in (top, top.get("text_config")):
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            if isinstance(cfg, dict) and type(cfg.get(key)) is int and cfg[key] > 0:
                return cfg[key]
    return None


def completion_budget(prompt_tokens: int, asked: int | None, default_max: int, context: int | None) -> int:
    """max_new_tokens for a request: what it asked, refused (400) when prompt + asked exceed the context."""
    if context is None:
        return asked or default_max
    room = context - prompt_tokens
    if asked is None:
        if room < 1:
            raise ApiError(400, f"This model's maximum context length is {context} tokens; the prompt has "
                                f"{prompt_tokens}.", "messages", "context_length_exceeded")
        return min(default_max, room)
    if asked > room:
        raise ApiError(400, f"This model's maximum context length is {context} tokens. However, you requested "
                            f"{prompt_tokens + asked} tokens ({prompt_tokens} in the prompt, {asked} in the "
                            "completion).", "max_tokens", "context_length_exceeded")
    return asked


def _config(pipe: Any, req: GenerationFields, max_new_tokens: int) -> Any:
    cfg = pipe.get_config()
    cfg.max_new_tokens = max_new_tokens
    cfg.apply_chat_template = False  # a text prompt (a VLM's) is templated here already, or is a raw completion
    cfg.ignore_eos = req.ignore_eos
    if req.min_tokens:
        cfg.min_new_tokens = req.min_tokens
    if req.temperature:  # 0 or absent: greedy, as OVMS does
        cfg.do_sample, cfg.temperature = True, req.temperature
        if req.top_p:
            cfg.top_p = req.top_p
        if req.top_k:
            cfg.top_k = req.top_k
        if req.seed is not None:
            cfg.rng_seed = req.seed
    else:
        cfg.do_sample = False
    return cfg


class _Detokenizer:
    """Turns growing token lists into text deltas; holds back an incomplete UTF-8 sequence."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer, self.sent = tokenizer, ""
        self.ids: list[int] = []

    def push(self, new: list[int]) -> str:
        self.ids += new
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        delta, self.sent = text[len(self.sent):], text
        return delta


def _method(req: GenerationFields) -> Method:
    return "Stream" if req.stream else "Unary"


def _engine(state: ServerState, req: GenerationFields) -> Engine:
    """The engine, once the request names the served text-generation model (404 otherwise)."""
    if state.engine is None:
        state.metrics.rejected(state.name, _method(req))
        raise HTTPException(status_code=404, detail="this server has no text-generation model")
    require_served_model(state, req.model, state.name, _method(req))
    return state.engine


def _token_ids(tokenizer: Any, text: str, special: bool) -> list[int]:
    return [int(x) for x in tokenizer.encode(text, add_special_tokens=special).input_ids.data[0]]


def _chat_prompt(tokenizer: Any, messages: list[ChatMessage]) -> str:
    """The templated prompt; a message's images become tags before its text (numbered over the request)."""
    history, seen = [], 0
    for m in messages:
        n = len(m.image_urls())
        tags = "".join(image_tag(seen + k) + "\n" for k in range(n))
        seen += n
        history.append({"role": m.role, "content": tags + m.text()})
    try:
        return tokenizer.apply_chat_template(history, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a model without a chat template: plain concatenation
        return "\n".join(f"{m['role']}: {m['content']}" for m in history) + "\nassistant:"


async def _generate(request: Request, state: ServerState, engine: Engine, req: GenerationFields, ids: list[int],
                    api: str, prompt_text: str | None = None, images: list[Any] | None = None) -> Any:
    """Generate for one request: its whole response, or its SSE stream. A VLM's engine takes the prompt as
    text (`prompt_text`, with `images`); `ids` then only count its text tokens against the context."""
    method, name, metrics = _method(req), state.name, state.metrics
    try:
        budget = completion_budget(len(ids), req.asked_tokens, state.default_max_tokens, state.context)
    except ApiError:
        metrics.rejected(name, method)
        raise
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[tuple[list[int], bool, str | None]] = asyncio.Queue()
    def sink(new: list[int], done: bool, reason: str | None) -> None:
        if new:  # counted as the engine makes them, so tokens made after the client left count too
            metrics.generated(name, len(new))
        loop.call_soon_threadsafe(q.put_nowait, (new, done, reason))

    ticket = engine.submit(ids, _config(engine.pipe, req, budget), sink, prompt_text=prompt_text,
                           images=images if prompt_text is not None else None)
    rid, created = f"{'chatcmpl' if api == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}", int(time.time())
    obj = "chat.completion" if api == "chat" else "text_completion"
    detok = _Detokenizer(engine.tokenizer)

    def usage() -> dict[str, int]:
        prompt = ticket.prompt_tokens if ticket.prompt_tokens is not None else len(ids)  # a VLM's: with images
        return {"prompt_tokens": prompt, "completion_tokens": len(detok.ids),
                "total_tokens": prompt + len(detok.ids)}

    def finish(ok: bool, reason: str | None = None) -> None:
        if not ok:
            log.log(logging.ERROR if reason and reason.startswith("error") else logging.INFO,
                    "%s %s ended: %s", api, rid, reason)
            metrics.error(name, method)

    checked = time.monotonic()

    async def next_tokens() -> tuple[list[int], bool, str | None] | None:
        """The engine's next delivery, or None once the client has gone away (generation cancelled).
        Tokens may arrive every millisecond, so the client is looked at by the clock, not on idle."""
        nonlocal checked
        while True:
            if time.monotonic() - checked > DISCONNECT_POLL_S:
                checked = time.monotonic()
                if await request.is_disconnected():
                    engine.cancel(ticket)
                    return None
            try:
                return await asyncio.wait_for(q.get(), timeout=DISCONNECT_POLL_S)
            except TimeoutError:
                pass

    def choice(delta: str | None, reason: str | None, first: bool = False) -> dict[str, Any]:
        if api == "chat":
            body = {"role": "assistant", "content": None} if first else ({"content": delta} if delta else {})
            return {"index": 0, "logprobs": None, "delta": body, "finish_reason": reason}
        return {"index": 0, "logprobs": None, "text": delta or "", "finish_reason": reason}

    if not req.stream:
        reason = None
        with metrics.request(name, method):
            while True:
                got = await next_tokens()
                if got is None:
                    finish(False, "client disconnected")
                    return JSONResponse(status_code=499, content=ApiError(499, "client disconnected").body())
                new, done, reason = got
                detok.push(new)
                if done:
                    break
            if reason and reason.startswith("error"):
                finish(False, reason)
                raise ApiError(500, "generation failed")
            if reason == "cancelled":
                finish(False, reason)
                raise ApiError(503, "the server is shutting down; generation was cancelled")
            finish(True)
            metrics.response(name, method)
        text = detok.tokenizer.decode(detok.ids, skip_special_tokens=True)
        body = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
                if api == "chat" else {"index": 0, "text": text, "finish_reason": reason, "logprobs": None})
        return {"id": rid, "object": obj, "created": created, "model": req.model or name, "choices": [body],
                "usage": usage()}

    chunk_obj = "chat.completion.chunk" if api == "chat" else "text_completion.chunk"
    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    async def events() -> AsyncIterator[str]:
        def sse(payload: dict[str, Any]) -> str:
            metrics.response(name, method)
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        head: dict[str, Any] = {"id": rid, "object": chunk_obj, "created": created, "model": req.model or name}
        if include_usage:
            head["usage"] = None
        ended = False
        try:
            with metrics.request(name, method):
                # the handshake: prefill is over, generation has started (OVMS sends it on both APIs)
                yield sse({**head, "choices": [choice(None, None, first=True)]})
                while True:
                    got = await next_tokens()
                    if got is None:
                        ended = True
                        finish(False, "client disconnected")
                        return
                    new, done, reason = got
                    if reason and reason.startswith("error") or reason == "cancelled":
                        ended = True
                        finish(False, reason)
                        yield sse(ApiError(500, "generation failed").body() if reason != "cancelled" else
                                  ApiError(503, "the server is shutting down; generation was cancelled").body())
                        break
                    delta = detok.push(new)
                    if delta or done:
                        yield sse({**head, "choices": [choice(delta, reason if done else None)]})
                    if done:
                        ended = True
                        finish(True)
                        if include_usage:
                            yield sse({**head, "choices": [], "usage": usage()})  # replaces the null usage
                        break
            yield "data: [DONE]\n\n"
        finally:
            if not ended:  # the response was cancelled (client gone, server stopping): stop generating
                engine.cancel(ticket)

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post("/v3/chat/completions")
@router.post("/v1/chat/completions")
async def chat(request: Request, req: ChatRequest, state: State) -> Any:
    engine = _engine(state, req)
    urls = [(f"messages.{i}.content", url) for i, m in enumerate(req.messages) for url in m.image_urls()]
    if urls and not state.vision:
        state.metrics.rejected(state.name, _method(req))
        raise ApiError(400, TEXT_ONLY, "messages", "image_input_not_supported")
    prompt = _chat_prompt(engine.tokenizer, req.messages)
    # the chat template already holds the model's special tokens
    ids = _token_ids(engine.tokenizer, prompt, special=False)
    if not state.vision:
        return await _generate(request, state, engine, req, ids, "chat")
    try:  # decoding takes milliseconds per picture: off the event loop, which streams the other responses
        images = await asyncio.to_thread(lambda: [decode_image_url(url, where) for where, url in urls])
    except ApiError:
        state.metrics.rejected(state.name, _method(req))
        raise
    return await _generate(request, state, engine, req, ids, "chat", prompt_text=prompt, images=images)


@router.post("/v3/completions")
@router.post("/v1/completions")
async def completions(request: Request, req: CompletionRequest, state: State) -> Any:
    engine = _engine(state, req)
    return await _generate(request, state, engine, req, _token_ids(engine.tokenizer, req.prompt, special=True),
                           "completions", prompt_text=req.prompt if state.vision else None)
