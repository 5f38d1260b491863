"""`/v3/embeddings` of `harness serve` on a TextEmbeddingPipeline."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException

from harness.serve.api.protocol import EmbeddingRequest, require_served_model
from harness.serve.api.state import State

router = APIRouter()


@router.post("/v3/embeddings")
@router.post("/v1/embeddings")
async def embeddings(req: EmbeddingRequest, state: State) -> Any:
    if state.embedder is None:
        state.metrics.rejected(state.embed_name)
        raise HTTPException(status_code=404, detail="no embedding model is served (harness serve --embeddings)")
    require_served_model(state, req.model, state.embed_name)
    texts = [req.input] if isinstance(req.input, str) else req.input
    with state.metrics.request(state.embed_name, "Unary"):
        async with state.embed_lock:
            vectors = await asyncio.to_thread(state.embedder.embed_documents, texts)
        assert state.embed_tokenizer is not None  # served together with the embedder
        tokens: int = sum(len(state.embed_tokenizer.encode(t).input_ids.data[0]) for t in texts)
        state.metrics.response(state.embed_name, "Unary")
    return {"object": "list", "model": req.model or state.name,
            "data": [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                     for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
