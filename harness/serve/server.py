"""`harness serve`: an OpenAI-compatible server on loopback shaped like OpenVINO Model Server.

Paths, request fields, SSE chunks and `usage` follow OVMS's OpenAI API as its source writes them
(src/llm/apis/openai_completions.cpp, src/rerank/rerank_utils.cpp): `/v3/...`, with `/v1/...` accepted
too. A stream opens with a handshake chunk (chat: `delta {role: assistant, content: null}`;
completions: `text ""`), then content chunks, each choice with `logprobs: null`, objects
`chat.completion.chunk` / `text_completion.chunk`, `model` copied from the request, `usage: null` on
every chunk when `stream_options.include_usage` is set and then a last chunk with `choices: []` and
`usage`, then `data: [DONE]`. Rerank follows OVMS's Cohere-style `/v3/rerank`: `{"results": [{index,
relevance_score[, document: {text}]}]}` best first, at most 100 documents. Text generation runs on one
ContinuousBatchingPipeline (harness/serve/engine.py), a vision-language model's too: chat messages may then
carry images as OpenAI image_url content parts (base64 data URLs; harness/serve/api/vision.py), which a
text-only model refuses with 400 as OVMS does (its MEDIAPIPE_EXECUTION_ERROR); embeddings on a TextEmbeddingPipeline and
rerank on a TextRerankPipeline when such a model is given. `/metrics` exposes OVMS's V3 graph metric families
(harness/serve/server_metrics.py). Tests and `server: local` suites use it; it is not a production server. One deliberate
addition: responses carry an `id` (OVMS leaves it as a TODO; OpenAI clients expect one).

Each API is a router in harness/serve/api/; build_app loads the pipelines into the state they share."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from harness.serve.api import embeddings, generation, rerank, service
from harness.serve.api.generation import context_length
from harness.serve.api.protocol import install_error_handlers
from harness.serve.api.rerank import MAX_RERANK_DOCUMENTS
from harness.serve.api.state import ServerState
from harness.serve.engine import Engine
from harness.serve.server_metrics import ServerMetrics


def build_app(model_dir: Path, device: str = "CPU", properties: dict[str, Any] | None = None,
              embedding_model_dir: Path | None = None, served_name: str | None = None,
              default_max_tokens: int = 256, rerank_model_dir: Path | None = None,
              scheduler: dict[str, Any] | None = None) -> FastAPI:
    """The FastAPI application (the pipelines load here, before the first request). `model_dir` may be
    a text-generation, vision-language (chat requests may then carry images), embedding or rerank model;
    the last two kinds can be added alongside. `scheduler` sets SchedulerConfig fields of the
    ContinuousBatchingPipeline (e.g. enable_prefix_caching)."""
    import openvino_genai as ov_genai

    from harness.models.export import export_task

    props = dict(properties or {})
    task = export_task(Path(model_dir))
    engine: Engine | None = None
    # an embedding or rerank model alone: its own API and no text generation
    if task == "feature-extraction":
        embedding_model_dir = model_dir
    elif task == "text-classification":
        rerank_model_dir = model_dir
    else:
        engine = Engine(ov_genai.ContinuousBatchingPipeline(str(model_dir), scheduler_config(scheduler or {}),
                                                            device, props))
    embedder = (ov_genai.TextEmbeddingPipeline(str(embedding_model_dir), device, **props)
                if embedding_model_dir else None)
    reranker = None
    if rerank_model_dir:
        rerank_cfg = ov_genai.TextRerankPipeline.Config()
        rerank_cfg.top_n = MAX_RERANK_DOCUMENTS  # every score comes back; the request's top_n trims
        reranker = ov_genai.TextRerankPipeline(str(rerank_model_dir), device, rerank_cfg, **props)
    name = served_name or Path(model_dir).name
    state = ServerState(
        metrics=ServerMetrics(), name=name, engine=engine,
        context=context_length(Path(model_dir)) if engine is not None else None,
        default_max_tokens=default_max_tokens, embedder=embedder,
        embed_tokenizer=ov_genai.Tokenizer(str(embedding_model_dir)) if embedding_model_dir else None,
        embed_name=Path(embedding_model_dir).name if embedding_model_dir else name,
        reranker=reranker, rerank_name=Path(rerank_model_dir).name if rerank_model_dir else name,
        vision=task == "image-text-to-text")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if engine is not None:
            engine.close()

    # no schema either: OVMS has none, and FastAPI's would promise 422 where the server answers 400
    app = FastAPI(title="harness serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.server = state  # what api.state.server_state hands every route
    install_error_handlers(app)
    for api in (service, generation, embeddings, rerank):
        app.include_router(api.router)
    return app


def scheduler_config(fields: dict[str, Any]) -> Any:
    """openvino-genai's SchedulerConfig with `fields` set; an unknown field or a value of the wrong type is a
    ValueError naming it."""
    import openvino_genai as ov_genai

    sc = ov_genai.SchedulerConfig()
    known = {k for k in dir(sc) if not k.startswith("_") and not callable(getattr(sc, k))}
    for name, value in fields.items():
        if name not in known:
            raise ValueError(f"{name} is not a SchedulerConfig field (it has {', '.join(sorted(known))})")
        try:
            setattr(sc, name, value)
        except TypeError:
            raise ValueError(f"{name}: {value!r} is not a {type(getattr(sc, name)).__name__}") from None
    return sc


def serve(model_dir: Path, host: str = "127.0.0.1", port: int = 8000, device: str = "CPU",
          properties: dict[str, Any] | None = None, embedding_model_dir: Path | None = None,
          rerank_model_dir: Path | None = None, scheduler: dict[str, Any] | None = None) -> None:
    """Run the server until SIGINT or SIGTERM; open responses get 2 s, then their generation is cancelled."""
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            engine = app.state.server.engine
            if engine is not None:  # open responses end now instead of generating to their limit
                engine.cancel_all()

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = build_app(model_dir, device, properties, embedding_model_dir, rerank_model_dir=rerank_model_dir,
                    scheduler=scheduler)
    _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)).run()
