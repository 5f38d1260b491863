"""What the llama.cpp backends refuse in one line before loading anything, and the threads they run on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.core.backend import CellModels
from harness.core.schema import GenerationSpec
from harness.execute.backends.llama_cpp import require_gguf, threads
from harness.kinds.base import Unsupported
from tests.factories import spec


def _models(target: Path) -> CellModels:
    return CellModels(target=target, draft=None, workdir=target.parent)


def test_llama_cpp_reads_only_a_gguf_file_on_the_cpu(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    cell = spec(precision="gguf").model_copy(update={"runtime": "llama.cpp"})
    assert require_gguf(cell, _models(gguf)) == gguf
    with pytest.raises(Unsupported, match="device is GPU"):
        require_gguf(cell.model_copy(update={"device": "GPU"}), _models(gguf))
    ir = tmp_path / "ir"
    ir.mkdir()
    with pytest.raises(Unsupported, match="reads GGUF files") as e:
        require_gguf(cell.model_copy(update={"precision": "int8"}), _models(ir))
    assert "\n" not in str(e.value)


def test_threads_are_every_usable_cpu_unless_the_cell_says(tmp_path):
    cell = spec()
    assert threads(cell) == len(os.sched_getaffinity(0))
    assert threads(cell.model_copy(update={"properties": {"INFERENCE_NUM_THREADS": 1}})) == 1


def test_beam_search_and_chat_templates_are_refused_in_one_line(tmp_path):
    from harness.execute.backends.llama_cpp import GENERATE

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    for gen, says in ((GenerationSpec(mode="beam", num_beams=2), "beam search"),
                      (GenerationSpec(apply_chat_template=True), "apply_chat_template")):
        cell = spec(precision="gguf").model_copy(update={"runtime": "llama.cpp", "generation": gen})
        with pytest.raises(Unsupported, match=says):
            GENERATE.build(cell, _models(gguf), None)
