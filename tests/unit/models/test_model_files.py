"""A model's own files as the harness reads them — a Hugging Face folder's config.json / model_index.json
(export task, int4 channels, context length for the runner and the server) and a GGUF file's header and metadata
— through the one loader: damaged, nested without end, of the wrong kind or absurd, each is one line naming the
file, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.core.errors import HarnessInputError, ModelPreparationError

DEEP = 100_000
BAD_CONFIGS = [(b"[1, 2]", "model file is not a JSON object (got 'list')"),
               (b"[" * DEEP + b"]" * DEEP, "model file nested deeper than 64 levels"),
               (b'{"architectures": ["\xff"]}', "line 1: model file not valid UTF-8")]


def _folder(tmp_path: Path, name: str, raw: bytes) -> Path:
    (tmp_path / name).write_bytes(raw)
    return tmp_path


@pytest.mark.parametrize("name", ["config.json", "model_index.json"])
@pytest.mark.parametrize(("raw", "says"), BAD_CONFIGS)
def test_the_export_task_of_a_damaged_folder_is_one_line(tmp_path, name, raw, says):
    """Before: AttributeError ('list' object has no attribute 'get'), RecursionError; the bytes that are not
    UTF-8 were read as a text-generation model."""
    from harness.models.export import export_task

    with pytest.raises(HarnessInputError) as e:
        export_task(_folder(tmp_path, name, raw))
    assert e.value.line().startswith(f"{tmp_path / name}: {says}"), e.value.line()


@pytest.mark.parametrize(("raw", "says"), BAD_CONFIGS)
def test_the_int4_channels_of_a_damaged_config_are_one_line(tmp_path, raw, says):
    """Before: AttributeError ('list' object has no attribute 'get'), RecursionError."""
    from harness.models.prepare import model_channels

    with pytest.raises(HarnessInputError, match=re.escape(says)):
        model_channels(_folder(tmp_path, "config.json", raw))


def test_channel_counts_that_are_no_counts_are_left_out(tmp_path):
    from harness.models.prepare import model_channels

    folder = _folder(tmp_path, "config.json", b'{"hidden_size": true, "intermediate_size": 1' + b"0" * 30 +
                     b', "num_attention_heads": 8, "head_dim": 64}')
    assert model_channels(folder) == {"attention width": 512}


@pytest.mark.parametrize(("raw", "says"), BAD_CONFIGS)
def test_the_context_of_a_damaged_config_is_one_line_for_the_runner_and_the_server(tmp_path, raw, says):
    """Before: RecursionError in both; the runner took a damaged config as an unknown context."""
    from harness.execute.runner import beyond_context
    from harness.serve.api.generation import context_length
    from tests.factories import spec

    folder = _folder(tmp_path, "config.json", raw)
    why = beyond_context(spec(), str(folder))
    assert why is not None and says in why
    with pytest.raises(HarnessInputError, match=re.escape(says)):
        context_length(folder)


def test_a_context_that_is_not_a_number_is_unknown(tmp_path):
    from harness.execute.runner import beyond_context
    from harness.serve.api.generation import context_length
    from tests.factories import spec

    folder = _folder(tmp_path, "config.json", b'{"max_position_embeddings": true, "text_config": [1]}')
    assert beyond_context(spec(), str(folder)) is None and context_length(folder) is None


def _gguf(path: Path, *, arch: object = "llama", layers: object = 2, tokens: int = 3, types: int = 3,
          name: str = "tiny") -> Path:
    import gguf

    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    if arch != "llama":  # the writer adds general.architecture itself: write it over with another type
        w.kv_data[0].pop("general.architecture")
        w.add_array("general.architecture", arch)  # type: ignore[arg-type]
    if isinstance(layers, str):
        w.add_string("llama.block_count", layers)
    else:
        w.add_uint64("llama.block_count", int(layers))  # type: ignore[call-overload]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list([f"t{i}" for i in range(tokens)])
    w.add_token_types([1] * types)
    w.add_token_merges([])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize(("kw", "says"), [
    (dict(layers="thirty"), "metadata llama.block_count is thirty, not a count"),
    (dict(layers=2**40), f"metadata llama.block_count is {2**40}, not a count"),
    (dict(arch=["llama", "mistral"]), "metadata general.architecture is list"),
])
def test_a_gguf_file_whose_metadata_is_absurd_is_one_line(tmp_path, kw, says):
    """Before: ValueError from int('thirty') (a traceback); 2**40 layers and a list taken as an architecture."""
    from harness.models.gguf import read_info

    with pytest.raises(ModelPreparationError, match=says):
        read_info(_gguf(tmp_path / "m.gguf", **kw))


def test_a_gguf_name_that_is_not_utf8_is_one_line(tmp_path):
    """Before: UnicodeDecodeError from the gguf package's string decoding (a traceback)."""
    from harness.models.gguf import read_info

    path = _gguf(tmp_path / "m.gguf", name="NAME-XYZ")
    path.write_bytes(path.read_bytes().replace(b"NAME-XYZ", b"NAME-\xff\xfe\xfd"))
    with pytest.raises(ModelPreparationError, match="metadata general.name is not readable: UnicodeDecodeError"):
        read_info(path)


def test_a_gguf_tokenizer_with_fewer_types_than_tokens_is_one_line(tmp_path):
    """Before: ValueError from zip(strict=True) (a traceback)."""
    from harness.models.gguf import hf_tokenizer

    with pytest.raises(ModelPreparationError, match="2 token types for 3 tokens"):
        hf_tokenizer(_gguf(tmp_path / "m.gguf", types=2))


@pytest.mark.parametrize(("patch", "says"), [((16, (2**62).to_bytes(8, "little")), "kv_count: more metadata entries"),
                                             ((8, (2**50).to_bytes(8, "little")), "tensor_count: more tensors")])
def test_a_gguf_header_counting_more_than_the_file_holds_is_refused_before_the_reader_loops(tmp_path, patch, says):
    from harness.models.gguf import read_info
    from harness.models.sources import check_model_files

    path = _gguf(tmp_path / "m.gguf")
    raw = bytearray(path.read_bytes())
    at, value = patch
    raw[at:at + 8] = value
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelPreparationError, match=f"is not a readable GGUF file: {says}"):
        read_info(path)
    with pytest.raises(HarnessInputError, match=says):  # and before any cell, naming the file
        check_model_files("gguf", path)


def test_a_well_formed_small_gguf_file_reads(tmp_path):
    from harness.models.gguf import read_info

    info = read_info(_gguf(tmp_path / "m.gguf"))
    assert (info.architecture, info.layers, info.name) == ("llama", 2, "tiny")


def test_an_export_that_never_ends_is_stopped_with_its_whole_group(tmp_path, monkeypatch):
    """Before: optimum-cli was waited on without a bound; a hung export held a suite for ever."""
    import sys
    import time

    from harness.models import export

    marker = tmp_path / "grandchild.pid"
    # the stand-in export starts a grandchild in its group, then hangs: both must go
    script = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
              f"time.sleep(60)']); open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    monkeypatch.setattr(export, "export_command", lambda *a: [sys.executable, "-c", script])
    monkeypatch.setattr(export, "EXPORT_TIMEOUT_S", 3)
    start = time.monotonic()
    with pytest.raises(ModelPreparationError, match="did not end within 3 s; stopped"):
        export.export_ir(tmp_path, tmp_path, "fp16", export.CompressionSpec())
    assert time.monotonic() - start < 30
    pid = int(marker.read_text())
    for _ in range(50):  # the killed grandchild is reaped by init shortly after
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the export's grandchild {pid} still runs")


def test_a_quality_window_longer_than_the_models_context_is_refused_before_measuring(tmp_path):
    from harness.core.schema import ScenarioSpec
    from harness.execute.runner import beyond_context
    from tests.factories import spec

    folder = _folder(tmp_path, "config.json", b'{"max_position_embeddings": 256}')
    cell = spec().model_copy(update={"scenario": ScenarioSpec(name="q", kind="quality", params={"context": 512})})
    why = beyond_context(cell, str(folder))
    assert why is not None and "windows of 512 tokens" in why and "context of 256" in why
    fits = cell.model_copy(update={"scenario": ScenarioSpec(name="q", kind="quality", params={"context": 128})})
    assert beyond_context(fits, str(folder)) is None
