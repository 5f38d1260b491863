"""What the routers of `harness serve` share: built once by build_app, reached through `server_state`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends
from starlette.requests import Request

from harness.serve.engine import Engine
from harness.serve.server_metrics import ServerMetrics

if TYPE_CHECKING:
    import openvino_genai as ov_genai


@dataclass(frozen=True)
class ServerState:
    """The loaded pipelines, the names they answer to, and the server's metrics."""

    metrics: ServerMetrics
    name: str
    engine: Engine | None  # None when the served model is an embedding or rerank model
    context: int | None
    default_max_tokens: int
    embedder: ov_genai.TextEmbeddingPipeline | None
    # usage counts the embedding model's own tokens, not those of a text-generation model served beside it
    embed_tokenizer: ov_genai.Tokenizer | None
    embed_name: str
    reranker: ov_genai.TextRerankPipeline | None
    rerank_name: str
    # each encoder pipeline has one infer request: calls take turns
    embed_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    rerank_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # the engine's pipeline is a vision-language model's: chat requests may carry images
    vision: bool = False

    def endpoint_name(self, path: str) -> str:
        """The model name a request to `path` is counted under."""
        if path.endswith("/rerank"):
            return self.rerank_name
        return self.embed_name if path.endswith("/embeddings") else self.name


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


State = Annotated[ServerState, Depends(server_state)]
