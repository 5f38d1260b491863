"""A fast OpenAI-compatible streaming endpoint with known timing, for benchmarks/serving_client.py:
every chat request waits TTFT_MS, then streams TOKENS chunks ITL_MS apart, then usage and [DONE].
Run: python benchmarks/fast_endpoint.py PORT [TTFT_MS ITL_MS TOKENS]"""

from __future__ import annotations

import asyncio
import json
import sys

import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

PORT = int(sys.argv[1])
TTFT_MS, ITL_MS, TOKENS = (float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (50.0, 10.0, 32)
app = FastAPI()


@app.post("/v3/chat/completions")
async def chat() -> StreamingResponse:
    async def events():
        await asyncio.sleep(TTFT_MS / 1000)
        for k in range(TOKENS):
            if k:
                await asyncio.sleep(ITL_MS / 1000)
            yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": f"t{k} "}}]}) + "\n\n"
        yield "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": TOKENS,
                                                              "total_tokens": 8 + TOKENS}}) + "\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/v2/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="error")
