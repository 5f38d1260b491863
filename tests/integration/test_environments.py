"""Environments: specs and their bad forms, and (from the package registry) a real older openvino-genai
release built once, reused, and running cells and an A/B comparison on the models the harness prepared."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from harness.core.errors import HarnessInputError
from harness.plan.environments import (
    EnvironmentSpec,
    parse_env_option,
    prepare_environment,
    release,
    requirements,
)
from tests.conftest import run_cli

OLD = "2026.3.1"  # the previous release line; the harness itself runs 2026.4


@pytest.mark.parametrize("kw", [
    {"name": "a"},
    {"name": "a", "packages": ["openvino-genai==2026.3.1"], "python": "/usr/bin/python3"},
    {"name": "a", "packages": ["openvino-genai 2026.3.1"]},
    {"name": "a", "packages": ["rm -rf /"]},
    {"name": "a", "packages": ["--index-url=http://evil/simple"]},
    {"name": "../x", "packages": ["openvino-genai==2026.3.1"]},
    {"name": "a", "packages": "openvino-genai==2026.3.1"},
])
def test_bad_environment_specs(kw):
    with pytest.raises(ValueError):
        EnvironmentSpec(**kw)


def test_env_option_forms():
    assert parse_env_option("old=openvino-genai==2026.3.1").packages == ["openvino-genai==2026.3.1"]
    two = parse_env_option("old=openvino-genai==2026.3.1;openvino-tokenizers==2026.3.1.0")
    assert two.packages == ["openvino-genai==2026.3.1", "openvino-tokenizers==2026.3.1.0"]
    assert parse_env_option("mine=/opt/py/bin/python").python == "/opt/py/bin/python"
    for bad in ("old", "=x", "old=", "old=openvino genai"):
        with pytest.raises(HarnessInputError) as e:
            parse_env_option(bad)
        assert "--env" in e.value.line() and "\n" not in e.value.line() and "input_value" not in e.value.line()


def test_requirements_pin_the_workers_own_packages_to_the_harness_versions():
    from importlib import metadata

    reqs = requirements(EnvironmentSpec(name="a", packages=["openvino-genai==2026.3.1"]))
    assert reqs[0] == "openvino-genai==2026.3.1"
    assert f"pydantic=={metadata.version('pydantic')}" in reqs
    assert "numpy" in reqs and "openvino-tokenizers[transformers]==2026.3.1.*" in reqs
    # a package the user pins is not pinned again
    mine = requirements(EnvironmentSpec(name="a", packages=["openvino-genai==2026.3.1", "pydantic==2.9.0"]))
    assert sum(r.startswith("pydantic==") for r in mine) == 1


def test_release_strings():
    assert release("2026.3.1.0-3290-56d9685302d") == release("2026.3.1") == "2026.3.1"
    assert release(None) is None


def test_suite_environments_are_an_axis_with_keys(tmp_path):
    from harness.plan.suite import expand, load_suite

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({
        "name": "s", "models": [{"name": "m", "source": "synthetic:tiny"}],
        "environments": [{"name": "old", "packages": [f"openvino-genai=={OLD}"]},
                         {"name": "mine", "python": sys.executable}],
        "scenarios": [{"name": "g", "kind": "generate"}],
        "exclude": [{"env": "mine", "precision": "int8"}], "precisions": ["fp16", "int8"]}))
    cells = expand(*load_suite(p)[:1], p)
    assert sorted(c.key for c in cells) == ["m/fp16/CPU/g/in128-out64/env=mine", "m/fp16/CPU/g/in128-out64/env=old",
                                            "m/int8/CPU/g/in128-out64/env=old"]
    p.write_text(p.read_text().replace("name: mine", "name: old"))
    with pytest.raises(HarnessInputError) as e:
        load_suite(p)
    assert "declared twice" in e.value.line()


# --- from the package registry ------------------------------------------------------------------------------

def _registry_reason() -> str | None:
    uv = shutil.which("uv", path=str(__import__("pathlib").Path(sys.executable).parent))
    if uv is None:
        return "uv is not installed beside the interpreter"
    try:
        proc = subprocess.run([uv, "pip", "compile", "-", "--python", sys.executable, "--quiet", "--no-header"],
                              input=f"openvino-genai=={OLD}\n", capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "the package registry did not answer within 120 s"
    if proc.returncode != 0:
        return f"the package registry cannot be reached: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


@pytest.fixture(scope="module")
def old_env(model_cache):
    reason = _registry_reason()
    if reason:
        pytest.skip(reason)
    spec = EnvironmentSpec(name="old", packages=[f"openvino-genai=={OLD}"])
    return spec, prepare_environment(spec, model_cache, log=print)


@pytest.mark.integration
def test_an_older_release_is_built_once_and_reused(old_env, model_cache):
    spec, env = old_env
    assert release(env.versions["openvino-genai"]) == OLD and release(env.versions["openvino"]) == OLD
    assert any(r.startswith("openvino==") for r in env.resolved) and env.digest
    again = prepare_environment(spec, model_cache)
    assert again.python == env.python and again.digest == env.digest
    # an environment whose build never finished (no manifest) is built again, never reused
    manifest = model_cache / "envs" / env.digest / "harness-env.json"
    manifest.unlink()
    rebuilt = prepare_environment(spec, model_cache)
    assert manifest.exists() and rebuilt.versions == env.versions


@pytest.mark.integration
@pytest.mark.parametrize(("pin", "needle"), [("openvino-genai==1999.1.0", "openvino-genai"),
                                              ("no-such-package-ovgh==1.0", "no-such-package-ovgh")])
def test_a_version_that_cannot_be_installed_is_one_line(old_env, model_cache, tmp_path, pin, needle):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmodels: [{name: m, source: synthetic:tiny}]\nscenarios: [{name: g, kind: generate}]\n")
    proc = run_cli("run", str(suite), "--env", f"broken={pin}", "--out", str(tmp_path / "r"), cache=model_cache,
                   timeout=600)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and "environment broken" in errors[0] and needle in errors[0], proc.stderr
    # no environment was recorded as built from the refused pin (a bare "1999" can be part of any number)
    assert all(pin not in p.read_text() and "no-such-package" not in p.read_text()
               for p in (model_cache / "envs").glob("*/harness-env.json"))


@pytest.mark.integration
def test_cells_run_in_the_older_release_on_the_harness_prepared_models(old_env, model_cache, tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "envs", "models": [{"name": "tiny", "source": "synthetic:tiny", "draft": "synthetic:tiny-draft"}],
        "precisions": ["fp16"], "prompts": {"input_tokens": [16]}, "generation": {"max_new_tokens": 8},
        "iterations": 1, "load_twice": False,
        "properties": {"INFERENCE_PRECISION_HINT": "f32"},
        "environments": [{"name": "old", "packages": [f"openvino-genai=={OLD}"]}, {"name": "own", "python": sys.executable}],
        "scenarios": [{"name": "greedy", "kind": "generate"}, {"name": "spec", "kind": "speculative"},
                      {"name": "cb", "kind": "continuous_batching", "concurrency": 2}]}))
    proc = run_cli("run", str(suite), "--out", str(tmp_path / "r"), cache=model_cache, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    envs = {e["name"]: e for e in res["metadata"]["environments"]}
    assert release(envs["old"]["versions"]["openvino-genai"]) == OLD
    by_env = {}
    for c in res["cells"]:
        assert c["status"] == "ok", (c["key"], c["error"])
        by_env.setdefault(c["spec"]["environment"], []).append(c)
        assert c["key"].endswith(f"/env={c['spec']['environment']}")
    for c in by_env["old"]:
        assert release(c["runtime_versions"]["openvino-genai"]) == OLD
    for c in by_env["own"]:
        assert release(c["runtime_versions"]["openvino-genai"]) != OLD
    # greedy output is the same on both releases at f32 (the same model bytes, its own tokenizer per release)
    old = next(c for c in by_env["old"] if c["spec"]["scenario"]["kind"] == "generate")
    own = next(c for c in by_env["own"] if c["spec"]["scenario"]["kind"] == "generate")
    assert [s["output_text"] for s in old["samples"]] == [s["output_text"] for s in own["samples"]]


@pytest.mark.integration
def test_ab_across_releases_end_to_end(old_env, model_cache, tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "ab", "models": [{"name": "tiny", "source": "synthetic:tiny"}], "precisions": ["fp16"],
        "prompts": {"input_tokens": [16]}, "generation": {"max_new_tokens": 16}, "iterations": 2,
        "load_twice": False, "environments": [{"name": "old", "packages": [f"openvino-genai=={OLD}"]}],
        "scenarios": [{"name": "greedy", "kind": "generate"}]}))
    out = tmp_path / "ab"
    proc = run_cli("ab", str(suite), "--base", "env=old", "--budget", "20s", "--min-rounds", "2", "--metric",
                   "tpot_ms", "--out", str(out), cache=model_cache, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    record = json.loads((out / "ab.json").read_text())
    cell = record["cells"][0]
    assert cell["rounds"] >= 2 and len(cell["order"]) == cell["rounds"] and cell["metrics"][0]["metric"] == "tpot_ms"
    assert release(record["environments"]["base"]["openvino-genai"]) == OLD
    for side in ("base", "candidate"):
        res = json.loads((out / side / "results.json").read_text())
        assert res["cells"][0]["status"] == "ok"
        processes = {s["process"] for s in res["cells"][0]["samples"]}
        assert len(processes) == cell["rounds"]  # one fresh worker process per round
    assert "recorded A/B" in proc.stderr
    md = run_cli("report", str(out), "--kind", "release")
    assert md.returncode == 0 and "| tiny | fp16 | greedy | tpot_ms |" in md.stdout
    page = run_cli("report", str(out), "--kind", "release", "--format", "html")
    assert page.returncode == 0 and "<svg" in page.stdout
    # the history keeps the A/B record: the report renders from its id alone
    from_history = run_cli("report", record["ab_id"], "--kind", "release")
    assert from_history.returncode == 0 and "| tiny | fp16 | greedy | tpot_ms |" in from_history.stdout
    compared = run_cli("compare", str(out / "base"), str(out / "candidate"), "--format", "json", "--no-history-noise")
    assert compared.returncode in (0, 1) and json.loads(compared.stdout)["cells"][0]["key"] == cell["key"]


def test_an_openvino_genai_pin_brings_its_own_openvino_release():
    # openvino-genai 2026.4.0 links libopenvino.so.2640; left alone the resolver pairs it with openvino 2026.4.1
    reqs = requirements(EnvironmentSpec(name="a", packages=["openvino-genai==2026.4.0.0"]))
    assert "openvino==2026.4.0" in reqs and "openvino-tokenizers[transformers]==2026.4.0.*" in reqs
    assert "openvino-tokenizers[transformers]" not in reqs
    mine = requirements(EnvironmentSpec(name="a", packages=["openvino-genai==2026.4.0", "openvino==2026.4.1"]))
    assert "openvino==2026.4.1" in mine and "openvino==2026.4.0" not in mine
    loose = requirements(EnvironmentSpec(name="a", packages=["openvino-genai>=2026.3"]))
    assert not any(r.startswith("openvino==") for r in loose)
