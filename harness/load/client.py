"""One request to an OpenAI-compatible endpoint, timed: typed input and output records.

Streaming responses are read as server-sent events: TTFT is the arrival of the first chunk that
carries content, every later content chunk adds an inter-chunk latency, and the token count is the
server's `usage.completion_tokens` (not a count of chunks: one chunk may carry several tokens).
Every failure — connection refused or dropped, HTTP 4xx/5xx, malformed SSE, a stall past the
timeout — ends as a record with `error_kind`, never as an exception."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from harness.core.metrics import HttpConnect, HttpReceive, HttpSend, HttpWait
from harness.kinds.serving import Api

PATHS = {"chat": "chat/completions", "completions": "completions", "embeddings": "embeddings", "rerank": "rerank"}
UNARY_ONLY = ("embeddings", "rerank")
DRAIN_S = 1.0  # how long to wait for a stream's end after `data: [DONE]`
# why a request failed, as the results count it (ServingErrors.counts) and the request exports write it
ErrorKind = Literal["connect", "timeout", "http_4xx", "http_5xx", "http_error", "server_error", "disconnected",
                    "malformed_sse", "malformed_response", "no_usage"]


@dataclass(frozen=True)
class Turn:
    """An earlier turn of a conversation: what the user sent (text and images) and what the server answered."""

    user: str
    answer: str
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestInput:
    api: Api
    prompt: str  # chat: the user message; completions: the prompt; embeddings: the input; rerank: the query
    max_tokens: int = 128
    ignore_eos: bool = True
    stream: bool = True
    index: int = 0
    documents: tuple[str, ...] = ()  # embeddings: more inputs after `prompt`; rerank: the documents
    # what the requests contain (harness/load/content.py): a shared system prompt (chat: a system message;
    # completions: prepended), the conversation's earlier turns (chat resends their images too), and image data
    # URLs sent with the user turn (chat)
    system: str = ""
    history: tuple[Turn, ...] = ()
    images: tuple[str, ...] = ()
    cancel_after: int | None = None  # close the stream once this many content chunks arrived (a cancellation)
    body: dict[str, Any] | None = None  # replay: send this body as it is instead of building one


@dataclass
class RequestOutput:
    index: int
    start_ns: int  # perf_counter_ns when the request was sent
    end_ns: int = 0
    ok: bool = False
    error_kind: ErrorKind | None = None  # None: it completed, or the client cancelled it
    error: str = ""
    status: int | None = None
    chunk_offsets_ms: list[float] = field(default_factory=list)  # content chunk arrivals after start
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cancelled: bool = False  # the client closed the stream on purpose (cancel_after): not an error
    scheduled_ns: int | None = None  # open loop: when the schedule meant it to be sent (perf_counter_ns)
    http: dict[str, float] = field(default_factory=dict)  # HTTP phases (see http_phases) and connection_reused
    body: bytes = b""  # the exact request body sent


def encode_body(body: dict[str, Any]) -> bytes:
    """The bytes sent for a body: one fixed serialization, so a recorded body re-sent is byte-identical."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class PhaseClock:
    """httpcore's `trace` extension callback: the clock at each connection / HTTP phase event (about a dozen a
    request, none per chunk), keyed without the transport prefix ("connect_tcp.started", ...)."""

    __slots__ = ("marks",)

    def __init__(self) -> None:
        self.marks: dict[str, int] = {}

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        self.marks.setdefault(name.partition(".")[2], time.perf_counter_ns())


def http_phases(marks: dict[str, int]) -> dict[str, float]:
    """HTTP phases in ms: connect = TCP connect start -> connected (with TLS: handshake done), only on a new
    connection; send = request headers start -> body sent; wait = body sent -> response headers received;
    receive = headers received -> last body byte read (or the response closed, for a stream cut short);
    connection_reused = 1 when no connection was opened for the request."""
    def ms(a: str, *bs: str) -> float | None:
        b = next((marks[x] for x in bs if x in marks), None)
        return (b - marks[a]) / 1e6 if a in marks and b is not None else None

    out = {"connection_reused": 0.0 if "connect_tcp.started" in marks else 1.0}
    for key, value in ((HttpConnect.tag, ms("connect_tcp.started", "start_tls.complete", "connect_tcp.complete")),
                       (HttpSend.tag, ms("send_request_headers.started", "send_request_body.complete")),
                       (HttpWait.tag, ms("send_request_body.complete", "receive_response_headers.complete")),
                       (HttpReceive.tag, ms("receive_response_headers.complete", "receive_response_body.complete",
                                              "receive_response_body.failed", "response_closed.started"))):
        if value is not None:
            out[key] = value
    return out


def payload(inp: RequestInput, model: str) -> dict[str, Any]:
    """The request body OVMS expects (ignore_eos and stream_options are OVMS/vLLM extensions)."""
    if inp.api == "embeddings":
        return {"model": model, "input": [inp.prompt, *inp.documents] if inp.documents else inp.prompt}
    if inp.api == "rerank":
        return {"model": model, "query": inp.prompt, "documents": list(inp.documents)}
    body: dict[str, Any] = {"model": model, "max_tokens": inp.max_tokens, "stream": inp.stream,
                            "ignore_eos": inp.ignore_eos, "temperature": 0}
    if inp.stream:
        body["stream_options"] = {"include_usage": True}
    if inp.api == "chat":
        body["messages"] = chat_messages(inp)
    else:  # no roles: the shared prefix, then the conversation so far, then this turn
        body["prompt"] = inp.system + "".join(t.user + t.answer for t in inp.history) + inp.prompt
    return body


def user_content(text: str, images: tuple[str, ...]) -> Any:
    """A user message's content: the text, or (with images) content parts, text first, as OVMS accepts them."""
    if not images:
        return text
    return [{"type": "text", "text": text}, *({"type": "image_url", "image_url": {"url": url}} for url in images)]


def chat_messages(inp: RequestInput) -> list[dict[str, Any]]:
    """OpenAI chat messages: the system prompt, earlier turns (with the images they sent), then the user turn."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": inp.system}] if inp.system else []
    for t in inp.history:
        messages += [{"role": "user", "content": user_content(t.user, t.images)},
                     {"role": "assistant", "content": t.answer}]
    messages.append({"role": "user", "content": user_content(inp.prompt, inp.images)})
    return messages


def _content(event: dict[str, Any]) -> str:
    out = ""
    for ch in event.get("choices") or []:
        delta = ch.get("delta")
        out += (delta.get("content") or "") if isinstance(delta, dict) else (ch.get("text") or "")
    return out


async def send(client: httpx.AsyncClient, base_url: str, inp: RequestInput, model: str,
               headers: dict[str, str] | None = None) -> RequestOutput:
    """Send one request and time it; the client's timeout bounds every read (a stalled stream times out)."""
    url = f"{base_url.rstrip('/')}/{PATHS[inp.api]}"
    body = encode_body(inp.body if inp.body is not None else payload(inp, model))
    clock = PhaseClock()
    ext = {"trace": clock}
    headers = {**(headers or {}), "content-type": "application/json"}
    out = RequestOutput(index=inp.index, start_ns=time.perf_counter_ns(), body=body)
    try:
        if inp.api in UNARY_ONLY or not inp.stream:
            r = await client.post(url, content=body, headers=headers, extensions=ext)
            out.status = r.status_code
            if r.status_code >= 400:
                return _fail(out, http_kind(r.status_code), http_error_text(r.status_code, r.text))
            try:
                body = r.json()
            except ValueError:
                return _fail(out, "malformed_response", f"not JSON: {r.text[:80]!r}")
            problem = _unary_problem(inp, body)
            if problem:
                return _fail(out, "malformed_response", problem)
            usage = body.get("usage") or {}
            out.prompt_tokens = usage.get("prompt_tokens")
            out.completion_tokens = usage.get("completion_tokens")
            if inp.api not in UNARY_ONLY:
                out.text = "".join((c.get("message") or {}).get("content") or c.get("text") or ""
                                   for c in body.get("choices") or [])
            out.ok = True
            return out
        async with client.stream("POST", url, content=body, headers=headers, extensions=ext) as r:
            out.status = r.status_code
            if r.status_code >= 400:
                await r.aread()
                return _fail(out, http_kind(r.status_code), http_error_text(r.status_code, r.text))
            done = False
            lines = r.aiter_lines()
            async for line in lines:
                if not line.strip() or line.startswith(":"):
                    continue
                if not line.startswith("data:"):
                    return _fail(out, "malformed_sse", f"unexpected line {line[:80]!r}")
                data = line[5:].strip()
                if data == "[DONE]":
                    done, out.end_ns = True, time.perf_counter_ns()
                    break
                try:
                    event = json.loads(data)
                except json.JSONDecodeError:
                    return _fail(out, "malformed_sse", f"not JSON: {data[:80]!r}")
                if "error" in event:
                    return _fail(out, "server_error", str(event["error"])[:200])
                text = _content(event)
                if text:
                    out.chunk_offsets_ms.append((time.perf_counter_ns() - out.start_ns) / 1e6)
                    out.text += text
                    if inp.cancel_after and len(out.chunk_offsets_ms) >= inp.cancel_after:
                        out.cancelled, out.end_ns = True, time.perf_counter_ns()
                        return out  # leaving the block closes the connection mid-stream: the server sees it go
                usage = event.get("usage")
                if usage:
                    out.prompt_tokens = usage.get("prompt_tokens")
                    out.completion_tokens = usage.get("completion_tokens")
            if not done:
                return _fail(out, "disconnected", "stream ended without data: [DONE]")
            await _drain(lines)
            if out.completion_tokens is None:
                return _fail(out, "no_usage", "no usage in the stream (stream_options.include_usage unsupported?)")
            out.ok = True
            return out
    except httpx.TimeoutException as e:
        return _fail(out, "timeout", type(e).__name__)
    except httpx.ConnectError as e:
        return _fail(out, "connect", str(e)[:200])
    except (httpx.RemoteProtocolError, httpx.ReadError) as e:
        return _fail(out, "disconnected", str(e)[:200])
    except httpx.HTTPError as e:
        return _fail(out, "http_error", f"{type(e).__name__}: {e}"[:200])
    finally:
        if not out.end_ns:
            out.end_ns = time.perf_counter_ns()
        out.http = http_phases(clock.marks)


async def _drain(lines: Any) -> None:
    """Read what follows `data: [DONE]` (the chunked body's terminator): a response closed before its end
    takes its connection with it, so without this every streamed request would open a new connection."""
    try:
        async with asyncio.timeout(DRAIN_S):
            async for _ in lines:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass  # a server that keeps the stream open: the connection is closed, as before


def _unary_problem(inp: RequestInput, body: Any) -> str | None:
    """What is wrong with a unary response body, or None: one result per input is expected."""
    if not isinstance(body, dict):
        return f"expected a JSON object, got {type(body).__name__}"
    key, want = {"embeddings": ("data", 1 + len(inp.documents)), "rerank": ("results", None)}.get(inp.api,
                                                                                               ("choices", None))
    items = body.get(key)
    if not isinstance(items, list) or not items:
        return f"no {key!r} list in the response"
    if want is not None and len(items) != want:
        return f"{len(items)} items in {key!r} for {want} inputs"
    return None


def http_error_text(status: int, text: str) -> str:
    """One short line for an error response: `HTTP 404: ` and the server's message (an OpenAI / OVMS JSON
    error's message, an HTML page's text, else the body's start, whitespace folded)."""
    message = text
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        found = (err.get("message") if isinstance(err, dict) else err) or body.get("message") or body.get("detail")
        message = found if isinstance(found, str) else text
    elif "<" in text:  # an HTML page (a proxy's, or a server that is no OpenAI endpoint): its visible text
        message = re.sub(r"<[^>]+>", " ", re.sub(r"<(head|script|style)\b.*?</\1>", " ", text, flags=re.I | re.S))
    return f"HTTP {status}: {' '.join(message.split())[:160]}".rstrip(": ")


def http_kind(status: int) -> ErrorKind:
    """An error status's kind: the client's fault (4xx) or the server's (5xx; a status past 599 is no
    standard one, so it counts as the server's)."""
    return "http_4xx" if status < 500 else "http_5xx"


def error_counts(outputs: list[RequestOutput]) -> dict[str, int]:
    """Failed requests per error kind, the kinds in the order they first failed."""
    counts: dict[str, int] = {}
    for o in outputs:
        if o.error_kind is not None:
            counts[o.error_kind] = counts.get(o.error_kind, 0) + 1
    return counts


def _fail(out: RequestOutput, kind: ErrorKind, message: str) -> RequestOutput:
    out.ok, out.error_kind, out.error, out.end_ns = False, kind, message, time.perf_counter_ns()
    return out
