"""The measurement driver with a fake pipeline (no OpenVINO): the lifecycle every backend shares."""

from __future__ import annotations

import time
from pathlib import Path

from harness.core.backend import CellModels
from harness.core.events import Done
from harness.core.schema import CheckOutputs, Sample
from harness.execute.backends.driver import Backend, measure_cell, pipeline_properties, prompt_index
from tests import factories


class FakeSession:
    def __init__(self, pipe, cell, models, call_s: float = 0.0):
        self.pipe, self.cell, self.call_s, self.calls, self.repeats = pipe, cell, call_s, [], []

    def call(self, iteration: int, warmup: bool) -> Sample:
        self.calls.append((iteration, warmup))
        time.sleep(self.call_s)
        return factories.sample(iteration, warmup=warmup)

    def repeat(self, iteration: int) -> CheckOutputs:
        self.repeats.append(iteration)
        return CheckOutputs(repeat_texts={iteration: "again"})

    def finish(self):
        return {"genai_load_ms": 1.0}, CheckOutputs(first_outputs={iteration: [1.5] for iteration in (0, 2)})


def _run(tmp_path: Path, call_s: float = 0.0, **spec):
    built, sessions, events = [], [], []

    def build(cell, models, cache):
        built.append(cache)
        return object()

    def start(pipe, cell, models):
        sessions.append(FakeSession(pipe, cell, models, call_s))
        return sessions[-1]

    cell = factories.spec(**{k: v for k, v in spec.items() if k in ("kind", "precision")})
    cell = cell.model_copy(update={k: v for k, v in spec.items() if k not in ("kind", "precision", "mode")})
    if "mode" in spec:
        cell = cell.model_copy(update={"generation": cell.generation.model_copy(update={"mode": spec["mode"]})})
    measure_cell(cell, CellModels(tmp_path, None, tmp_path), events.append, Backend(build=build, start=start))
    return built, sessions[0], events


def test_load_twice_warmup_iterations_repeat_and_done(tmp_path: Path) -> None:
    built, session, events = _run(tmp_path, warmup=2, iterations=3, load_twice=True)
    assert built == [tmp_path / "compile-cache"] * 2  # cold, then from the compile cache
    kinds = [e.event for e in events]
    assert kinds == ["loaded"] + ["sample"] * 5 + ["done"]
    assert set(events[0].cell_values) == {"load_cold_ms", "model_memory_mb", "load_cached_ms"}
    assert session.calls == [(0, True), (1, True), (2, False), (3, False), (4, False)]
    assert session.repeats == [2]  # the first measured iteration, untimed
    done = events[-1]
    assert isinstance(done, Done) and done.check_outputs == CheckOutputs(
        repeat_texts={2: "again"}, first_outputs={0: [1.5], 2: [1.5]})
    assert done.cell_values["genai_load_ms"] == 1.0 and done.cell_values["peak_rss_mb"] > 0


def test_min_measure_s_keeps_measuring_up_to_max_iterations(tmp_path: Path) -> None:
    _, session, _ = _run(tmp_path, call_s=0.02, warmup=1, iterations=2, min_measure_s=0.3, max_iterations=1000)
    measured = [c for c in session.calls if not c[1]]
    assert 8 <= len(measured) <= 40  # ~0.3 s of 20 ms calls, far more than the 2 iterations asked
    _, session, _ = _run(tmp_path, call_s=0.02, warmup=1, iterations=2, min_measure_s=10, max_iterations=4)
    assert len([c for c in session.calls if not c[1]]) == 4  # the cap wins


def test_no_compile_cache_no_second_load_and_no_repeat_for_beam(tmp_path: Path) -> None:
    built, session, events = _run(tmp_path, load_twice=False, mode="beam")
    assert built == [None] and "load_cached_ms" not in events[0].cell_values
    assert session.repeats == [] and not events[-1].check_outputs.repeat_texts


def test_a_batch_call_emits_its_samples_then_its_batch(tmp_path: Path) -> None:
    from harness.core.schema import BatchRecord
    from harness.execute.backends.driver import BatchCall

    events = []

    class Batches(FakeSession):
        def call(self, iteration, warmup):
            samples = [factories.sample(iteration, warmup=warmup) for _ in range(3)]
            return BatchCall(samples=samples, batch=BatchRecord(iteration=iteration, warmup=warmup, requests=3,
                                                                start_ns=0, end_ns=1, output_tokens=12, input_tokens=24,
                                                                steps=4))

    cell = factories.spec().model_copy(update={"warmup": 0, "iterations": 2})
    measure_cell(cell, CellModels(tmp_path, None, tmp_path), events.append,
                 Backend(build=lambda c, m, d: object(), start=Batches))
    assert [e.event for e in events] == ["loaded"] + (["sample"] * 3 + ["batch"]) * 2 + ["done"]


def test_inputs_and_properties() -> None:
    cell = factories.spec()
    same = cell.model_copy(update={"prompts": cell.prompts.model_copy(update={"vary_per_iteration": False})})
    assert prompt_index(same, 5, 3) == 0  # one prompt unless they vary
    vary = cell.model_copy(update={"prompts": cell.prompts.model_copy(update={"vary_per_iteration": True})})
    assert [prompt_index(vary, i, 3) for i in range(5)] == [0, 1, 2, 0, 1]
    assert prompt_index(vary, 7, None) == 7
    with_ab = cell.model_copy(update={"properties": {"ATTENTION_BACKEND": "SDPA", "NUM_STREAMS": 1}})
    assert pipeline_properties(with_ab) == {"NUM_STREAMS": 1}
    assert pipeline_properties(with_ab, frozenset({"ATTENTION_BACKEND"})) == with_ab.properties
    # the compile cache goes in as CACHE_DIR when the driver gives one (the cached load), never otherwise
    assert pipeline_properties(with_ab, cache_dir=Path("/c")) == {"NUM_STREAMS": 1, "CACHE_DIR": "/c"}
    assert "CACHE_DIR" not in pipeline_properties(with_ab, cache_dir=None)


def test_every_measuring_backend_goes_through_the_driver() -> None:
    """No backend keeps a measuring loop of its own (serving drives a server with a load generator)."""
    import re

    backends = Path(__file__).resolve().parents[3] / "harness" / "execute" / "backends"
    for path in backends.glob("*.py"):
        if path.name in ("driver.py", "serving.py"):
            continue
        text = path.read_text()
        assert not re.search(r"while i < total|min_measure_s|load_cold_ms", text), path.name


def test_drifted_backends_now_follow_the_cell(monkeypatch, tmp_path: Path) -> None:
    """What the backends did differently before sharing the driver: Whisper ignored min_new_tokens and beam
    search, VLM streamed under beam search, the text encoders passed ATTENTION_BACKEND to their pipelines."""
    from types import SimpleNamespace

    import openvino_genai as ov_genai

    from harness.core.schema import GenerationSpec
    from harness.execute.backends import genai_text_encoders, genai_vlm, genai_whisper

    cell = factories.spec().model_copy(update={
        "generation": GenerationSpec(max_new_tokens=8, min_new_tokens=5, mode="beam", num_beams=3),
        "properties": {"ATTENTION_BACKEND": "SDPA", "NUM_STREAMS": 1}})
    pipe = SimpleNamespace(get_generation_config=ov_genai.WhisperGenerationConfig)
    session = genai_whisper.WhisperSession(pipe, cell, CellModels(tmp_path, None, tmp_path))
    assert (session.cfg.min_new_tokens, session.cfg.num_beams, session.streamer_cls) == (5, 3, None)

    monkeypatch.setattr(genai_vlm, "prompt_texts", lambda cell, tok, n: ["p"] * n)
    vlm = genai_vlm.VLMSession(SimpleNamespace(get_generation_config=ov_genai.GenerationConfig,
                                               get_tokenizer=lambda: None), cell, CellModels(tmp_path, None, tmp_path))
    assert vlm.streamer_cls is None and vlm.cfg.num_beams == 3

    seen = {}
    monkeypatch.setattr(ov_genai, "TextEmbeddingPipeline", type("P", (), {
        "Config": ov_genai.TextEmbeddingPipeline.Config, "PoolingType": ov_genai.TextEmbeddingPipeline.PoolingType,
        "__init__": lambda self, path, device, cfg, **props: seen.update(props)}))
    genai_text_encoders._embedding_pipeline(cell, CellModels(tmp_path, None, tmp_path), None)
    assert seen == {"NUM_STREAMS": 1}
