"""`/v3/rerank` of `harness serve` on a TextRerankPipeline, in OVMS's Cohere-style shape."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException

from harness.serve.api.protocol import RerankRequest, require_served_model
from harness.serve.api.state import State

MAX_RERANK_DOCUMENTS = 100  # OVMS's default limit (max_allowed_chunks)

router = APIRouter()


@router.post("/v3/rerank")
@router.post("/v1/rerank")
async def rerank(req: RerankRequest, state: State) -> Any:
    if state.reranker is None or len(req.documents) > MAX_RERANK_DOCUMENTS:
        state.metrics.rejected(state.rerank_name)
        if state.reranker is None:
            raise HTTPException(status_code=404, detail="no rerank model is served (harness serve --rerank)")
        raise HTTPException(status_code=400, detail=f"{len(req.documents)} documents exceed the limit of "
                                                    f"{MAX_RERANK_DOCUMENTS}")
    require_served_model(state, req.model, state.rerank_name)
    with state.metrics.request(state.rerank_name, "Unary"):
        async with state.rerank_lock:
            ranked = await asyncio.to_thread(state.reranker.rerank, req.query, req.documents)
        state.metrics.response(state.rerank_name, "Unary")
    results = []
    for index, score in list(ranked)[:req.top_n or len(req.documents)]:
        item: dict[str, Any] = {"index": int(index), "relevance_score": float(score)}
        if req.return_documents:
            item["document"] = {"text": req.documents[int(index)]}
        results.append(item)
    return {"id": f"rerank-{uuid.uuid4().hex[:24]}", "results": results}
