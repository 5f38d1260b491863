"""`harness serve`: an OpenAI-compatible server on loopback shaped like OpenVINO Model Server.

Paths, request fields, SSE chunks and `usage` follow OVMS's OpenAI API as its source writes them
(src/llm/apis/openai_completions.cpp, src/rerank/rerank_utils.cpp): `/v3/...`, with `/v1/...` accepted
too. A stream opens with a handshake chunk (chat: `delta {role: assistant, content: null}`;
completions: `text ""`), then content chunks, each choice with `logprobs: null`, objects
`chat.completion.chunk` / `text_completion.chunk`, `model` copied from the request, `usage: null` on
every chunk when `stream_options.include_usage` is set and then a last chunk with `choices: []` and
`usage`, then `data: [DONE]`. Rerank follows OVMS's Cohere-style `/v3/rerank`: `{"results": [{index,
relevance_score[, document: {text}]}]}` best first, at most 100 documents. Text generation runs on one
ContinuousBatchingPipeline (harness/serving/engine.py); embeddings on a TextEmbeddingPipeline and
rerank on a TextRerankPipeline when such a model is given. `/metrics` exposes OVMS's V3 graph metric families
(harness/serving/server_metrics.py). Tests and `server: local` suites use it; it is not a production server. One deliberate
addition: responses carry an `id` (OVMS leaves it as a TODO; OpenAI clients expect one)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request

from harness.serving.engine import Engine
from harness.serving.server_metrics import Method, ServerMetrics

log = logging.getLogger("harness.serve")

DISCONNECT_POLL_S = 0.25  # how soon a generation stops after its client went away

# Bounds a request can name before the model's context caps it: no number that overflows the runtime.
MAX_TOKENS_BOUND = 2**31 - 1


def _unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (it holds a lone surrogate)") from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]


class _Body(BaseModel):
    # a boolean or a text where a number belongs is refused, not read as 1 or parsed
    model_config = ConfigDict(strict=True)


class ChatMessage(_Body):
    role: Text
    content: Text | None = ""


class StreamOptions(_Body):
    include_usage: bool = False


class _GenerationFields(_Body):
    model: Text = ""
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    min_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS_BOUND)
    ignore_eos: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=MAX_TOKENS_BOUND)
    seed: int | None = Field(None, ge=0, le=2**64 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @property
    def asked_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @model_validator(mode="after")
    def _min_within_max(self) -> _GenerationFields:
        if self.min_tokens and self.asked_tokens and self.min_tokens > self.asked_tokens:
            raise ValueError(f"min_tokens ({self.min_tokens}) is above max_tokens ({self.asked_tokens})")
        return self


class ChatRequest(_GenerationFields):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(_GenerationFields):
    prompt: Text


MAX_RERANK_DOCUMENTS = 100  # OVMS's default limit (max_allowed_chunks)


class RerankRequest(_Body):
    model: Text = ""
    query: Text
    documents: list[Text] = Field(min_length=1)
    top_n: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    return_documents: bool = False


class EmbeddingRequest(_Body):
    model: Text = ""
    input: Text | list[Text]
    encoding_format: Literal["float"] = "float"


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "literal"}


class ApiError(Exception):
    """A request the server refuses, answered in OpenAI's error shape."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def context_length(model_dir: Path) -> int | None:
    """The model's context window from its config.json (None when it does not say)."""
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(cfg.get(key), int) and cfg[key] > 0:
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


def _config(pipe: Any, req: _GenerationFields, max_new_tokens: int) -> Any:
    cfg = pipe.get_config()
    cfg.max_new_tokens = max_new_tokens
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


def build_app(model_dir: Path, device: str = "CPU", properties: dict[str, Any] | None = None,
              embedding_model_dir: Path | None = None, served_name: str | None = None,
              default_max_tokens: int = 256, rerank_model_dir: Path | None = None) -> Any:
    """The FastAPI application (the pipelines load here, before the first request). `model_dir` may be
    a text-generation, embedding or rerank model; the other two kinds can be added alongside."""
    import openvino_genai as ov_genai
    from fastapi import FastAPI, HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from harness.models.export import export_task

    props = dict(properties or {})
    task = export_task(Path(model_dir))
    if task in ("feature-extraction", "text-classification"):  # an encoder alone: no text generation
        if task == "feature-extraction":
            embedding_model_dir = model_dir
        else:
            rerank_model_dir = model_dir
        pipe, engine = None, None
        tokenizer = ov_genai.Tokenizer(str(model_dir))
    else:
        pipe = ov_genai.ContinuousBatchingPipeline(str(model_dir), ov_genai.SchedulerConfig(), device, props)
        engine = Engine(pipe)
        tokenizer = engine.tokenizer
    embedder = (ov_genai.TextEmbeddingPipeline(str(embedding_model_dir), device, **props)
                if embedding_model_dir else None)
    # usage counts the embedding model's own tokens, not those of a text-generation model served beside it
    embed_tokenizer = ov_genai.Tokenizer(str(embedding_model_dir)) if embedding_model_dir else None
    reranker = None
    if rerank_model_dir:
        rerank_cfg = ov_genai.TextRerankPipeline.Config()
        rerank_cfg.top_n = MAX_RERANK_DOCUMENTS  # every score comes back; the request's top_n trims
        reranker = ov_genai.TextRerankPipeline(str(rerank_model_dir), device, rerank_cfg, **props)
    name = served_name or Path(model_dir).name
    context = context_length(Path(model_dir)) if engine is not None else None
    embed_lock, rerank_lock = asyncio.Lock(), asyncio.Lock()

    embed_name = Path(embedding_model_dir).name if embedding_model_dir else name
    rerank_name = Path(rerank_model_dir).name if rerank_model_dir else name
    metrics = ServerMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield
        if engine is not None:
            engine.close()

    app = FastAPI(title="harness serve", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine = engine

    def _endpoint_name(path: str) -> str:
        return rerank_name if path.endswith("/rerank") else embed_name if path.endswith("/embeddings") else name

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejected(_endpoint_name(request.url.path))
        first = exc.errors()[0] if exc.errors() else {}
        # a union's branch tags ("str", "function-after[...]") are not fields: the param names fields only
        where = ".".join(str(x) for x in first.get("loc", ())[1:]
                         if isinstance(x, int) or ("[" not in x and x not in _TYPE_TAGS)) or None
        message = str(first.get("msg", "invalid request"))
        if where is None and first.get("type") in ("model_attributes_type", "dict_type", "json_invalid", "missing"):
            message = f"the request body must be a JSON object ({message})"
        return JSONResponse(status_code=400, content=ApiError(400, f"{where}: {message}" if where else message,
                                                              where).body())

    @app.exception_handler(ApiError)
    async def _refused(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.body())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content=ApiError(exc.status_code, str(exc.detail)).body())

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # the detail (runtime paths, tracebacks) stays in the server's log, never in a client's body
        log.exception("request %s failed", request.url.path)
        return JSONResponse(status_code=500, content=ApiError(500, "internal server error").body())

    def _served(asked: str, served: str, method: Method = "Unary") -> None:
        """404 (counted as a rejection) unless the request names the served model or none."""
        if asked and asked != served:
            metrics.rejected(served, method)
            raise ApiError(404, f"The model `{asked}` does not exist (this server serves `{served}`)", "model",
                           "model_not_found")

    @app.get("/v2/health/ready")
    @app.get("/v2/health/live")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v3/models")
    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "harness"}]}

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.exposition(), media_type="text/plain; version=0.0.4")

    def _prompt_ids(text: str) -> list[int]:
        return [int(x) for x in tokenizer.encode(text, add_special_tokens=True).input_ids.data[0]]

    def _chat_prompt(messages: list[ChatMessage]) -> str:
        history = [{"role": m.role, "content": m.content or ""} for m in messages]
        try:
            return tokenizer.apply_chat_template(history, add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - a model without a chat template: plain concatenation
            return "\n".join(f"{m['role']}: {m['content']}" for m in history) + "\nassistant:"

    async def _generate(request: Request, req: _GenerationFields, prompt: str, api: str) -> Any:
        method: Method = "Stream" if req.stream else "Unary"
        if engine is None:
            metrics.rejected(name, method)
            raise HTTPException(status_code=404, detail="this server has no text-generation model")
        _served(req.model, name, method)
        ids = _prompt_ids(prompt) if api == "completions" else [
            int(x) for x in tokenizer.encode(prompt, add_special_tokens=False).input_ids.data[0]]
        try:
            budget = completion_budget(len(ids), req.asked_tokens, default_max_tokens, context)
        except ApiError:
            metrics.rejected(name, method)
            raise
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[tuple[list[int], bool, str | None]] = asyncio.Queue()
        def sink(new: list[int], done: bool, reason: str | None) -> None:
            loop.call_soon_threadsafe(q.put_nowait, (new, done, reason))

        ticket = engine.submit(ids, _config(pipe, req, budget), sink)
        rid, created = f"{'chatcmpl' if api == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}", int(time.time())
        obj = "chat.completion" if api == "chat" else "text_completion"
        detok = _Detokenizer(tokenizer)

        def usage() -> dict[str, int]:
            return {"prompt_tokens": len(ids), "completion_tokens": len(detok.ids),
                    "total_tokens": len(ids) + len(detok.ids)}

        def finish(ok: bool, reason: str | None = None) -> None:
            if not ok:
                log.log(logging.ERROR if reason and reason.startswith("error") else logging.INFO,
                        "%s %s ended: %s", api, rid, reason)
                metrics.error(name, method)
            metrics.generated(name, len(detok.ids))

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

        async def events():
            def sse(payload: dict[str, Any]) -> str:
                metrics.response(name, method)
                return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

            head = {"id": rid, "object": chunk_obj, "created": created, "model": req.model or name}
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

    @app.post("/v3/chat/completions")
    @app.post("/v1/chat/completions")
    async def chat(request: Request, req: ChatRequest) -> Any:
        return await _generate(request, req, _chat_prompt(req.messages), "chat")

    @app.post("/v3/completions")
    @app.post("/v1/completions")
    async def completions(request: Request, req: CompletionRequest) -> Any:
        return await _generate(request, req, req.prompt, "completions")

    @app.post("/v3/embeddings")
    @app.post("/v1/embeddings")
    async def embeddings(req: EmbeddingRequest) -> Any:
        if embedder is None:
            metrics.rejected(embed_name)
            raise HTTPException(status_code=404, detail="no embedding model is served (harness serve --embeddings)")
        _served(req.model, embed_name)
        texts = [req.input] if isinstance(req.input, str) else req.input
        with metrics.request(embed_name, "Unary"):
            async with embed_lock:  # the pipeline has one infer request: calls take turns
                vectors = await asyncio.to_thread(embedder.embed_documents, texts)
            assert embed_tokenizer is not None  # served together with the embedder
            tokens: int = sum(len(embed_tokenizer.encode(t).input_ids.data[0]) for t in texts)
            metrics.response(embed_name, "Unary")
        return {"object": "list", "model": req.model or name,
                "data": [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                         for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/v3/rerank")
    @app.post("/v1/rerank")
    async def rerank(req: RerankRequest) -> Any:
        if reranker is None or len(req.documents) > MAX_RERANK_DOCUMENTS:
            metrics.rejected(rerank_name)
            if reranker is None:
                raise HTTPException(status_code=404, detail="no rerank model is served (harness serve --rerank)")
            raise HTTPException(status_code=400, detail=f"{len(req.documents)} documents exceed the limit of "
                                                        f"{MAX_RERANK_DOCUMENTS}")
        _served(req.model, rerank_name)
        with metrics.request(rerank_name, "Unary"):
            async with rerank_lock:
                ranked = await asyncio.to_thread(reranker.rerank, req.query, req.documents)
            metrics.response(rerank_name, "Unary")
        results = []
        for index, score in list(ranked)[:req.top_n or len(req.documents)]:
            item: dict[str, Any] = {"index": int(index), "relevance_score": float(score)}
            if req.return_documents:
                item["document"] = {"text": req.documents[int(index)]}
            results.append(item)
        return {"id": f"rerank-{uuid.uuid4().hex[:24]}", "results": results}

    return app


def serve(model_dir: Path, host: str = "127.0.0.1", port: int = 8000, device: str = "CPU",
          properties: dict[str, Any] | None = None, embedding_model_dir: Path | None = None,
          rerank_model_dir: Path | None = None) -> None:
    """Run the server until SIGINT or SIGTERM; open responses get 2 s, then their generation is cancelled."""
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if app.state.engine is not None:  # open responses end now instead of generating to their limit
                app.state.engine.cancel_all()

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = build_app(model_dir, device, properties, embedding_model_dir, rerank_model_dir=rerank_model_dir)
    _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)).run()
