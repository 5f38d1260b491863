"""A fast OpenAI-compatible streaming endpoint with known timing, for benchmarks/serving_client.py:
every chat request streams its first chunk TTFT_MS after arrival and the others ITL_MS apart (on
absolute deadlines), then usage and [DONE]. It logs, per request (keyed by the user message), its
arrival and every chunk's send time on the host's monotonic clock (`time.perf_counter_ns`, the clock
the client reads), served at GET /log, so the client's own delay can be told from the endpoint's.
With LOCKSTEP (a 1 as fifth argument) every stream's deadlines sit on one shared ITL_MS grid: all streams
send their chunks at the same instants, as a continuous-batching server does for the sequences of one batch,
and the client reads them in bursts.
Run: python benchmarks/fast_endpoint.py PORT [TTFT_MS ITL_MS TOKENS [LOCKSTEP]]"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

PORT = int(sys.argv[1])
TTFT_MS, ITL_MS, TOKENS = (float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (50.0, 10.0, 32)
LOCKSTEP = len(sys.argv) > 5 and sys.argv[5] == "1"
app = FastAPI()
LOG: dict[str, list[int]] = {}  # user message -> [arrival_ns, chunk 0 sent_ns, chunk 1 sent_ns, ...]


@app.post("/v3/chat/completions")
async def chat(request: Request) -> StreamingResponse:
    arrival = time.perf_counter_ns()
    body = await request.json()
    times = LOG.setdefault(str(body["messages"][-1]["content"]), [arrival])
    loop = asyncio.get_running_loop()
    t0 = loop.time() - (time.perf_counter_ns() - arrival) / 1e9
    if LOCKSTEP:  # the next grid point: every stream's chunks go out together
        t0 = (t0 // (ITL_MS / 1000) + 1) * (ITL_MS / 1000)

    async def events():
        for k in range(TOKENS):
            # absolute deadlines from the request's arrival: sleep overshoot does not accumulate
            await asyncio.sleep(max(0.0, t0 + (TTFT_MS + k * ITL_MS) / 1000 - loop.time()))
            yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": f"t{k} "}}]}) + "\n\n"
            times.append(time.perf_counter_ns())
        yield "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": TOKENS,
                                                              "total_tokens": 8 + TOKENS}}) + "\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/log")
async def log() -> dict[str, list[int]]:
    out = dict(LOG)
    LOG.clear()
    return out


@app.get("/v2/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="error")
