"""What serving requests contain (issue 16 §2): shared-prefix prompt sets, multi-turn conversations carrying
the server's real answers, and chat requests with images, checked at a capturing server, then end to end
against `harness serve` (a text model and the synthetic VLM)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections import Counter

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from harness.core.errors import HarnessInputError
from harness.load.client import RequestInput, RequestOutput, Turn, payload
from harness.load.content import RequestMaker
from harness.plan.suite import load_suite
from harness.records.store import load_results
from tests.conftest import app_in_thread, run_cli, run_suite

# ---------------------------------------------------------------- request bodies, without a server


def test_payload_carries_system_history_and_images():
    img0, img1 = "data:image/png;base64,AAAA", "data:image/png;base64,BBBB"
    inp = RequestInput("chat", "now this", system="SYS", history=(Turn("u1", "a1", (img0,)), Turn("u2", "a2")),
                       images=(img1,))
    messages = payload(inp, "m")["messages"]
    assert messages == [{"role": "system", "content": "SYS"},
                        {"role": "user", "content": [{"type": "text", "text": "u1"},
                                                     {"type": "image_url", "image_url": {"url": img0}}]},
                        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"},
                        {"role": "assistant", "content": "a2"},
                        {"role": "user", "content": [{"type": "text", "text": "now this"},
                                                     {"type": "image_url", "image_url": {"url": img1}}]}]
    plain = payload(RequestInput("chat", "hi"), "m")["messages"]
    assert plain == [{"role": "user", "content": "hi"}]  # nothing added when nothing is asked
    done = payload(RequestInput("completions", "P", system="S ", history=(Turn("u", "a"),)), "m")
    assert done["prompt"] == "S uaP"


def test_request_maker_builds_turns_from_recorded_answers():
    maker = RequestMaker(lambda i: RequestInput("chat", f"user{i}", index=i), turns=3, prefixes=["A", "B"],
                         images=[("i0",), ("i1",), ("i2",), ("i3",)])
    assert maker(0).history == () and maker(0).system == "A" and maker(0).images == ("i0",)
    maker.record(RequestOutput(index=0, start_ns=0, text="answer0"))
    assert maker(1).history == (Turn("user0", "answer0", ("i0",)),)  # an earlier turn's images are sent again
    maker.record(RequestOutput(index=1, start_ns=0, text="answer1"))
    assert maker(2).history == (Turn("user0", "answer0", ("i0",)), Turn("user1", "answer1", ("i1",)))
    assert maker(3).history == () and maker(3).system == "B"  # conversation 1: the second prefix
    assert maker.readings(4) == {"conversation": 1.0, "turn": 2.0}
    assert maker(-1).history == () and maker.readings(-1)["turn"] == 1.0  # warm-up: first turns


# ---------------------------------------------------------------- hostile suite values

SUITE = """
name: content
models: [{name: m, source: synthetic:tiny}]
precisions: [fp16]
server: local
scenarios: [{name: s, kind: serving, SCENARIO}]
"""


@pytest.mark.parametrize("scenario,needle", [
    ("api: completions, images_per_request: 1", "images_per_request=1 applies to api chat, not completions"),
    ("api: embeddings, images_per_request: 2", "images_per_request=2 applies to api chat"),
    ("api: embeddings, shared_prefix_tokens: 64", "shared_prefix_tokens=64 applies to api chat or completions"),
    ("api: rerank, shared_prefix_tokens: 8", "not rerank"),
    ("api: [chat, embeddings], turns: 2", "turns=2 applies to api chat or completions, not embeddings"),
    ("api: chat, turns: 0", "turns"),
    ("api: chat, turns: 2, rate: 4", "turns=2 runs a conversation's turns one after another"),
    ("api: chat, prefix_groups: 3", "prefix_groups=3 needs shared_prefix_tokens"),
    ("api: chat, shared_prefix_tokens: 0", "shared_prefix_tokens"),
    ("api: chat, images_per_request: -1", "images_per_request"),
    ("api: chat, images_per_request: 1, image_size: 0", "image_size"),
    ("api: chat, enable_prefix_caching: maybe", "enable_prefix_caching"),
])
def test_bad_content_params_name_the_field(tmp_path, scenario, needle):
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.replace("SCENARIO", scenario))
    with pytest.raises(HarnessInputError, match=needle):
        load_suite(path)


def test_bad_content_param_is_one_line_exit_2(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.replace("SCENARIO", "api: completions, images_per_request: 1"))
    proc = run_cli("run", str(path), "--out", str(tmp_path / "r"))
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(path) in lines[0] and "images_per_request=1" in lines[0]


def test_serve_refuses_an_unknown_scheduler_field():
    proc = run_cli("serve", "synthetic:no-such-model-needed", "--scheduler", '{"enable_prefix_cache": true}',
                   timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "--scheduler" in proc.stderr and "enable_prefix_cache is not a SchedulerConfig field" in proc.stderr


# ---------------------------------------------------------------- what a server receives (capturing server)


def _capture_app(seen: list[dict]) -> FastAPI:
    """Answers every chat / completions stream with a text unique to the request, and keeps the bodies
    (with the text it answered and when the answer ended)."""
    app = FastAPI()
    counter = iter(range(10**6))

    @app.post("/v3/{path:path}")
    async def generate(path: str, request: Request):
        body = await request.json()
        n = next(counter)
        answer = f"answer-{n} from the server"
        record = {"path": path, "body": body, "answer": answer, "received": time.monotonic(), "ended": None}
        seen.append(record)

        async def events():
            for word in answer.split(" "):
                await asyncio.sleep(0.005)
                delta = {"delta": {"content": word + " "}} if path.startswith("chat") else {"text": word + " "}
                yield "data: " + json.dumps({"choices": [{"index": 0, **delta, "finish_reason": None}]}) + "\n\n"
            usage = {"prompt_tokens": 10, "completion_tokens": body["max_tokens"], "total_tokens": 10}
            yield "data: " + json.dumps({"choices": [], "usage": usage}) + "\n\n"
            record["ended"] = time.monotonic()
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def capture():
    seen: list[dict] = []
    with app_in_thread(_capture_app(seen)) as url:
        yield f"{url}/v3", seen


def _remote_suite(url: str, scenario: dict) -> dict:
    return {"name": "content-capture", "server": url, "models": [{"name": "tiny", "source": "synthetic:tiny"}],
            "precisions": ["fp16"], "prompts": {"input_tokens": [24]},
            "generation": {"max_new_tokens": 4, "ignore_eos": True}, "warmup": 1, "iterations": 1,
            # the model's tokenizer, prepared locally: prompts and prefixes token-exact, no calibration requests
            "timeout_s": 300, "scenarios": [{"name": "s", "kind": "serving", "models": ["tiny"], "tokenizer": "model",
                                             **scenario}]}


def _tokens(model_cache, text: str) -> int:
    import openvino_genai as ov_genai

    from harness.core.schema import CompressionSpec
    from harness.models.prepare import prepare_model

    tok = ov_genai.Tokenizer(str(prepare_model("synthetic:tiny", "fp16", CompressionSpec(), model_cache).path))
    return len(tok.encode(text, add_special_tokens=False).input_ids.data[0])


@pytest.mark.integration
def test_shared_prefix_is_byte_identical_and_token_exact_at_the_server(tmp_path, model_cache, capture):
    url, seen = capture
    seen.clear()
    scenario = {"api": ["chat", "completions"], "concurrency": 2, "requests": 6, "shared_prefix_tokens": 40,
                "prefix_groups": 2}
    proc, out = run_suite(_remote_suite(url, scenario), tmp_path, model_cache)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    chats = [r["body"] for r in seen if r["path"] == "chat/completions"]
    prompts = [r["body"]["prompt"] for r in seen if r["path"] == "completions"]
    assert len(chats) == len(prompts) == 7  # the warm-up and 6 measured requests each
    systems = [m[0] for m in (b["messages"] for b in chats)]
    assert all(s["role"] == "system" for s in systems)
    by_text = Counter(s["content"] for s in systems)
    assert len(by_text) == 2 and sorted(by_text.values()) == [3, 4]  # two groups, round robin (+ the warm-up)
    for prefix in by_text:
        assert _tokens(model_cache, prefix) == 40
    # completions prepend the same prefixes, byte for byte, before user turns that all differ
    assert all(any(p.startswith(prefix) for prefix in by_text) for p in prompts)
    users = [p[len(next(x for x in by_text if p.startswith(x))):] for p in prompts]
    assert len(set(users)) == 7
    assert all(_tokens(model_cache, m[1]["content"]) == 24 for m in (b["messages"] for b in chats))


@pytest.mark.integration
def test_each_turn_carries_the_servers_answers_in_order(tmp_path, model_cache, capture):
    url, seen = capture
    seen.clear()
    scenario = {"api": "chat", "concurrency": 2, "requests": 9, "turns": 3, "shared_prefix_tokens": 16}
    proc, out = run_suite(_remote_suite(url, scenario), tmp_path, model_cache)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    answered = {r["body"]["messages"][-1]["content"]: r for r in seen}  # user turn -> what the server did
    depth = Counter()
    for r in seen:
        history = r["body"]["messages"][1:-1]  # after the system prompt, before this turn
        depth[len(history) // 2] += 1
        for user, assistant in zip(history[::2], history[1::2], strict=True):
            earlier = answered[user["content"]]
            assert user["role"] == "user" and assistant["role"] == "assistant"
            assert assistant["content"] == earlier["answer"] + " "  # the streamed answer, as the client read it
            assert earlier["ended"] <= r["received"]  # that turn had been answered before this one was sent
    assert depth == {0: 4, 1: 3, 2: 3}  # 3 conversations of 3 turns, plus the warm-up
    # two clients: conversations ran side by side (some requests of different conversations overlapped)
    measured = [r for r in seen if r["received"] > seen[0]["ended"]]
    assert any(a["received"] < b["ended"] and b["received"] < a["ended"] for a in measured for b in measured
               if a is not b)
    [cell] = load_results(out).cells
    turns = Counter(s.readings["turn"] for s in cell.samples)
    assert turns == {1.0: 3, 2.0: 3, 3.0: 3}
    assert cell.summaries["ttft_first_turn_ms"].n == 3 and cell.summaries["ttft_later_turns_ms"].n == 6


@pytest.mark.integration
def test_images_arrive_as_png_data_urls(tmp_path, model_cache, capture):
    from PIL import Image

    url, seen = capture
    seen.clear()
    scenario = {"api": "chat", "concurrency": 2, "requests": 4, "images_per_request": 2, "image_size": 48}
    proc, _ = run_suite(_remote_suite(url, scenario), tmp_path, model_cache)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    pictures = []
    for r in seen:
        text, *images = r["body"]["messages"][-1]["content"]
        assert text["type"] == "text" and _tokens(model_cache, text["text"]) == 24
        assert [p["type"] for p in images] == ["image_url", "image_url"]
        for p in images:
            head, data = p["image_url"]["url"].split(",", 1)
            assert head == "data:image/png;base64"
            with Image.open(io.BytesIO(base64.b64decode(data))) as img:
                assert img.format == "PNG" and img.size == (48, 48) and img.mode == "RGB"
            pictures.append(data)
    assert len(seen) == 5 and len(set(pictures)) == 10  # every image of every request its own


# ---------------------------------------------------------------- harness serve: a VLM, refusals


@pytest.mark.integration
def test_text_model_refuses_images_and_vlm_takes_them(model_cache):
    from fastapi.testclient import TestClient

    from harness.core.schema import CompressionSpec
    from harness.load.content import png_data_url
    from harness.models.prepare import prepare_model
    from harness.serve.server import build_app

    llm = prepare_model("synthetic:tiny", "fp16", CompressionSpec(), model_cache).path
    image = {"type": "image_url", "image_url": {"url": png_data_url(0, 32)}}
    body = {"max_tokens": 4, "ignore_eos": True,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "what is it"}, image]}]}
    with TestClient(build_app(llm)) as client:
        r = client.post("/v3/chat/completions", json=body)
        assert r.status_code == 400 and "supports only text input, but image_url has been provided" in r.text
        empty = client.post("/v3/chat/completions", json={**body, "messages": [{"role": "user", "content": []}]})
        assert empty.status_code == 400 and "content array is empty" in empty.text
        audio = client.post("/v3/chat/completions", json={**body, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "input_audio"}]}]})
        assert audio.status_code == 400 and "content.1.type: Input should be 'text' or 'image_url'" in audio.text
        text_parts = client.post("/v3/chat/completions", json={**body, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "what is it"}]}]})
        assert text_parts.status_code == 200  # text-only content parts are fine for a text model
    vlm = prepare_model("synthetic:tiny-vlm", "fp16", CompressionSpec(), model_cache).path
    with TestClient(build_app(vlm)) as client:
        for bad, needle in (("https://example.com/x.png", "only base64 data URLs"),
                            ("data:image/png;base64,@@@", "Invalid base64"),
                            ("data:image/png;base64," + base64.b64encode(b"not a png").decode(), "Image parsing failed")):
            r = client.post("/v3/chat/completions", json={**body, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": bad}}]}]})
            assert r.status_code == 400 and needle in r.text and "messages.0.content" in r.text, r.text
        plain = client.post("/v3/chat/completions", json={**body, "messages": [{"role": "user", "content": "what is it"}]})
        seeing = client.post("/v3/chat/completions", json=body)
        two = client.post("/v3/chat/completions", json={**body, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "what is it"}, image, image]}]})
        assert plain.status_code == seeing.status_code == two.status_code == 200, seeing.text
        n = [r.json()["usage"]["prompt_tokens"] for r in (plain, seeing, two)]
        assert n[1] - n[0] >= 8 and n[2] - n[1] >= 8, n  # each image's vision tokens counted
        assert all(r.json()["usage"]["completion_tokens"] == 4 for r in (plain, seeing, two))
        too_long = client.post("/v3/chat/completions", json={**body, "max_tokens": 4000})
        assert too_long.status_code == 400 and "maximum context length is 2048" in too_long.text  # text_config's
        completion = client.post("/v3/completions", json={"prompt": "def main():", "max_tokens": 3, "ignore_eos": True})
        assert completion.status_code == 200 and completion.json()["usage"]["completion_tokens"] == 3


LOCAL = {
    "name": "content-local", "server": "local",
    "models": [{"name": "tiny", "source": "synthetic:tiny"}, {"name": "tiny-vlm", "source": "synthetic:tiny-vlm"}],
    "precisions": ["fp16"], "prompts": {"input_tokens": [32]},
    "generation": {"max_new_tokens": 8, "ignore_eos": True}, "warmup": 1, "iterations": 1, "timeout_s": 300,
    "properties": {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0},
    "scenarios": [
        {"name": "conv", "kind": "serving", "models": ["tiny"], "api": ["chat", "completions"], "concurrency": 2,
         "requests": 6, "turns": 3, "shared_prefix_tokens": 64, "enable_prefix_caching": True},
        {"name": "vlm", "kind": "serving", "models": ["tiny-vlm"], "api": "chat", "concurrency": 2, "requests": 4,
         "images_per_request": [0, 1], "image_size": 224},
        {"name": "vlm-conv", "kind": "serving", "models": ["tiny-vlm"], "api": "chat", "concurrency": 2,
         "requests": 4, "turns": 2, "images_per_request": 1, "image_size": 224},
    ],
}


@pytest.mark.integration
def test_conversations_and_images_end_to_end_on_harness_serve(tmp_path, model_cache):
    proc, out = run_suite(LOCAL, tmp_path, model_cache)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cells = {(c.spec.scenario.name, c.spec.scenario.params.get("api"), c.spec.scenario.params.get("images_per_request")):
             c for c in load_results(out).cells}
    for c in cells.values():
        assert c.status == "ok" and {ch.name: ch.status for ch in c.checks}["serving_errors"] == "pass", c.error
        assert {ch.name: ch.status for ch in c.checks}["exact_token_count"] == "pass"
        assert c.summaries["ttft_ms"].n == len(c.samples) and c.summaries["tpot_ms"].median > 0
    for api in ("chat", "completions"):
        c = cells[("conv", api, None)]
        by_turn = {t: sorted(s.input_tokens for s in c.samples if s.readings["turn"] == t) for t in (1.0, 2.0, 3.0)}
        # the server counted the shared prefix, and each turn the history: the user turn and 8-token answer before
        assert min(by_turn[1.0]) > 64 + 32
        assert min(by_turn[2.0]) >= max(by_turn[1.0]) + 32 + 8 - 4
        assert min(by_turn[3.0]) >= max(by_turn[2.0]) + 32 + 8 - 4
        assert c.summaries["ttft_first_turn_ms"].n == 2 and c.summaries["ttft_later_turns_ms"].n == 4
        assert not any(ch.name == "matches_greedy" for ch in c.checks)  # not the greedy cell's prompts
    plain, seeing = cells[("vlm", "chat", 0)], cells[("vlm", "chat", 1)]
    # the server saw the image: its vision tokens are in the prompt count
    image_tokens = min(s.input_tokens for s in seeing.samples) - max(s.input_tokens for s in plain.samples)
    assert image_tokens > 8
    assert "turn" not in seeing.samples[0].readings
    # a second turn resends the first turn's image: the server counts its text, the answer and that image too
    conv = cells[("vlm-conv", "chat", 1)]
    by_turn = {t: [s.input_tokens for s in conv.samples if s.readings["turn"] == t] for t in (1.0, 2.0)}
    assert min(by_turn[2.0]) >= max(by_turn[1.0]) + 32 + 8 + image_tokens - 4, by_turn


@pytest.mark.integration
def test_scheduler_config_fields_are_checked():
    from harness.serve.server import scheduler_config

    assert scheduler_config({"enable_prefix_caching": True}).enable_prefix_caching is True
    import openvino_genai as ov_genai

    # fields not given keep openvino-genai's defaults
    assert scheduler_config({}).to_string() == ov_genai.SchedulerConfig().to_string()
    with pytest.raises(ValueError, match="enable_prefix_caching: 'yes' is not a bool"):
        scheduler_config({"enable_prefix_caching": "yes"})
