"""`harness bisect`: the first candidate, in an ordered list from good to bad, that regresses one cell's metric.

Candidates are released versions of a package (listed from the package registry), environments, or named
configurations (a side of `harness ab`: environment, model folder, device, properties). The first candidate
is taken as good and the last as bad, as `git bisect` takes its ends; the bad end is measured first unless
told not to, so a bisect never runs on a regression that is not there. Each probe is an interleaved A/B
comparison (`harness ab`) of the candidate against the good end for the one cell and metric: a regression
verdict marks it bad, unchanged or improvement good, and an inconclusive verdict, an environment that cannot
be installed or a cell that fails marks it skipped with its reason (`git bisect skip`). Probes lie strictly
between the last good and the first bad candidate, so the answer is consistent whatever the order of
verdicts; skipped candidates make the answer a range when they sit next to it.

The record (every step with its A/B evidence) is kept in the history database after each step, keyed by a
digest of what was asked, so running the same command again resumes where an interrupted bisect stopped."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.core.errors import HarnessInputError
from harness.core.input_files import MAX_SUITE_BYTES, load_yaml
from harness.experiment.ab import SideSpec
from harness.plan.environments import EnvironmentSpec

if TYPE_CHECKING:
    from harness.core.schema import CellSpec

BISECT_VERSION = "1.0"
Mark = Literal["good", "bad", "skip"]
Status = Literal["running", "found", "range", "no-regression", "bad-end-unmeasured"]


class Candidate(BaseModel):
    """One candidate: what the candidate side of its A/B comparison changes, and the environment it defines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    side: SideSpec
    environment: EnvironmentSpec | None = Field(None, description="the environment `side.env` names, when the "
                                                "candidate defines it (a registry version)")


class Evidence(BaseModel):
    """The A/B comparison behind a step's mark: the judged metric's ratio candidate / good end."""

    ab_id: str
    ab_dir: str
    verdict: str
    ratio: float
    ci_low: float | None
    ci_high: float | None
    good_median: float
    candidate_median: float
    unit: str
    rounds: int


class Step(BaseModel):
    step: int
    index: int = Field(description="the candidate's position in the ordered list")
    candidate: str
    mark: Mark
    reason: str = ""
    evidence: Evidence | None = None
    minutes: float
    finished_at: str


class BisectRecord(BaseModel):
    version: str = BISECT_VERSION
    bisect_id: str
    suite_name: str
    suite_file: str
    cell_key: str
    metric: str
    candidates: list[Candidate]
    check_ends: bool = True
    out_dir: str
    started_at: str
    finished_at: str | None = None
    status: Status = "running"
    first_bad: str | None = None
    range: list[str] = Field(default_factory=list, description="status range: the candidates the first bad is among")
    steps: list[Step] = Field(default_factory=list)

    def measured(self) -> dict[int, Mark]:
        """Candidate index -> the mark its last step gave it."""
        return {s.index: s.mark for s in self.steps}

    def minutes(self) -> float:
        return sum(s.minutes for s in self.steps)


def bisect_id(suite_sha: str, cell_key: str, metric: str, candidates: Sequence[Candidate], check_ends: bool,
              settings: dict) -> str:
    doc = {"suite": suite_sha, "cell": cell_key, "metric": metric, "check_ends": check_ends, "settings": settings,
           "candidates": [c.model_dump(mode="json") for c in candidates]}
    return "bisect-" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def next_probe(n: int, measured: dict[int, Mark], check_ends: bool) -> int | None:
    """The candidate to measure next, or None when the answer is known (`conclusion`). `measured` holds the
    marks steps gave; the first candidate is good by definition (every comparison's base) and the last bad
    until measured otherwise."""
    if check_ends and n - 1 not in measured:
        return n - 1
    if measured.get(n - 1, "bad") != "bad":
        return None
    lo, hi = _window(n, measured)
    open_ = [i for i in range(lo + 1, hi) if i not in measured]
    if not open_:
        return None
    mid = (lo + hi) / 2
    return min(open_, key=lambda i: (abs(i - mid), i))


def _window(n: int, measured: dict[int, Mark]) -> tuple[int, int]:
    """(last good index before the first bad one, first bad index)."""
    marks: dict[int, Mark] = {0: "good", n - 1: "bad", **measured}
    hi = min(i for i, m in marks.items() if m == "bad")
    lo = max(i for i, m in marks.items() if m == "good" and i < hi)
    return lo, hi


def conclusion(n: int, measured: dict[int, Mark]) -> tuple[Status, list[int]]:
    """When `next_probe` is None: found [first bad], a range of candidates the first bad is among, no
    regression (the bad end measured good), or the bad end could not be measured."""
    if measured.get(n - 1) == "good":
        return "no-regression", []
    if measured.get(n - 1) == "skip":
        return "bad-end-unmeasured", []
    lo, hi = _window(n, measured)
    between = [i for i in range(lo + 1, hi) if measured.get(i) == "skip"]
    return ("range", [*between, hi]) if between else ("found", [hi])


# ---------------------------------------------------------------- candidates

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def version_candidates(good: str, bad: str, list_versions) -> list[Candidate]:
    """Released versions from `good` to `bad` (pins `pkg==version`, the same package) as candidates, each in an
    environment pinning it; `list_versions(pkg)` gives the registry's versions."""
    from packaging.version import InvalidVersion, Version

    pins = {}
    for option, pin in (("--good", good), ("--bad", bad)):
        pkg, sep, version = pin.partition("==")
        if not sep or not pkg.strip() or not version.strip():
            raise HarnessInputError("command line", option, pin, "expected PACKAGE==VERSION, e.g. openvino-genai==2026.2.0")
        try:
            pins[option] = (pkg.strip().lower(), Version(version.strip()))
        except InvalidVersion:
            raise HarnessInputError("command line", option, pin, "not a version number") from None
    (pkg, v_good), (pkg_bad, v_bad) = pins["--good"], pins["--bad"]
    if pkg != pkg_bad:
        raise HarnessInputError("command line", "--bad", bad, f"names another package than --good ({pkg})")
    if not v_good < v_bad:
        raise HarnessInputError("command line", "--good", good, f"is not older than --bad ({bad})")
    released = list_versions(pkg)
    parsed = sorted({Version(v): v for v in released if _is_version(v)}.items())
    for option, v, pin in (("--good", v_good, good), ("--bad", v_bad, bad)):
        if not any(p == v for p, _ in parsed):
            near = ", ".join(s for _, s in parsed[-8:])
            raise HarnessInputError("command line", option, pin, f"no such release of {pkg} in the package registry "
                                    f"(newest: {near or 'none'})")
    between = [s for p, s in parsed if v_good <= p <= v_bad and (not p.is_prerelease or p in (v_good, v_bad))]
    return [Candidate(name=s, side=SideSpec(env=_env_name(pkg, s)),
                      environment=EnvironmentSpec(name=_env_name(pkg, s), packages=[f"{pkg}=={s}"]))
            for s in between]


def _is_version(text: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def safe_name(text: str, limit: int = 64) -> str:
    """`text` as a name for an environment or a folder: letters, digits, '_', '.' and '-' only."""
    return _SAFE.sub("-", text)[:limit]


def _env_name(pkg: str, version: str) -> str:
    return safe_name(f"{pkg}-{version}")


def registry_versions(package: str) -> list[str]:
    """Every version of `package` the configured package registry offers (pip's index settings)."""
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", package, "--disable-pip-version-check"],
                              capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        raise HarnessInputError("command line", "--good", package, "the package registry did not answer in 180 s") from None
    found = re.search(r"Available versions:\s*(.+)", proc.stdout)
    if proc.returncode != 0 or not found:
        why = (proc.stderr.strip().splitlines() or ["no versions listed"])[-1]
        raise HarnessInputError("command line", "--good", package, f"cannot list its versions: {why[:200]}")
    return [v.strip() for v in found.group(1).split(",") if v.strip()]


class CandidateFileEntry(BaseModel):
    """One entry of a --candidates file: a name and what its side changes (and, optionally, the
    environment it defines)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    env: str | None = None
    model: str | None = None
    device: str | None = None
    properties: dict[str, str | int | float | bool] = Field(default_factory=dict)
    packages: list[str] = Field(default_factory=list, description="define `env` (default: the name) with these pins")
    python: str | None = Field(None, description="define `env` as this interpreter")


def _reason(err: ValueError) -> str:
    """What a refused environment definition says is wrong: the validator's message, not pydantic's last line (a
    link to its documentation)."""
    from pydantic import ValidationError

    if isinstance(err, ValidationError) and err.errors():
        return str(err.errors()[0]["msg"]).removeprefix("Value error, ")
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def parse_candidate_items(items: Sequence[str], declared: dict[str, EnvironmentSpec]) -> list[Candidate]:
    """`--candidates a,b,c`: each an environment declared in the suite or with --env, or a pin pkg==version."""
    out = []
    for item in items:
        if "==" in item:
            pkg, _, version = item.partition("==")
            name = _env_name(pkg.strip(), version.strip())
            try:
                env = EnvironmentSpec(name=name, packages=[item.strip()])
            except ValueError as e:
                raise HarnessInputError("command line", "--candidates", item, _reason(e)) from None
            out.append(Candidate(name=item.strip(), side=SideSpec(env=name), environment=env))
        elif item in declared:
            out.append(Candidate(name=item, side=SideSpec(env=item)))
        else:
            raise HarnessInputError("command line", "--candidates", item, "neither an environment declared in the "
                                    f"suite or with --env (known: {', '.join(declared) or 'none'}) nor a pin such as "
                                    "openvino-genai==2026.3.0")
    return out


def load_candidate_file(path, declared: dict[str, EnvironmentSpec]) -> list[Candidate]:
    """A YAML or JSON list of CandidateFileEntry, ordered from good to bad."""
    from pydantic import ValidationError

    raw = load_yaml(Path(path), "candidates file", MAX_SUITE_BYTES)
    if isinstance(raw, dict) and "candidates" in raw:
        raw = raw["candidates"]
    if not isinstance(raw, list):
        raise HarnessInputError(str(path), None, None, "expected a list of candidates (name plus env, model, device, "
                                "properties)")
    out = []
    for i, entry in enumerate(raw):
        try:
            item = CandidateFileEntry.model_validate(entry)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise HarnessInputError(str(path), f"[{i}]{'.' + loc if loc else ''}", first.get("input"),
                                    first["msg"]) from None
        env = None
        if item.packages or item.python:
            try:
                env = EnvironmentSpec(name=item.env or _env_name("env", item.name), packages=item.packages, python=item.python)
            except ValueError as err:
                raise HarnessInputError(str(path), f"[{i}].packages", item.packages or item.python,
                                        _reason(err)) from None
        elif item.env and item.env not in declared:
            raise HarnessInputError(str(path), f"[{i}].env", item.env, "unknown environment; declare it in the suite, "
                                    f"with --env, or give packages: here (known: {', '.join(declared) or 'none'})")
        side = SideSpec(env=env.name if env else item.env, model=item.model, device=item.device, properties=item.properties)
        out.append(Candidate(name=item.name, side=side, environment=env))
    return out


def check_candidates(candidates: Sequence[Candidate], where: str) -> None:
    """At least two, names unique."""
    if len(candidates) < 2:
        raise HarnessInputError(where, "--candidates", len(candidates), "a bisect needs at least a good and a bad "
                                "candidate")
    names = [c.name for c in candidates]
    if dup := next((n for n in names if names.count(n) > 1), None):
        raise HarnessInputError(where, "--candidates", dup, "two candidates have the same name")


def choose_candidates(candidates: str | None, good: str | None, bad: str | None,
                      declared: dict[str, EnvironmentSpec]) -> tuple[list[Candidate], dict[str, EnvironmentSpec]]:
    """The candidates of --candidates (a file, or a comma-separated list) or of --good and --bad (the releases
    between them), checked; and every environment known: the declared ones and those candidates define."""
    from harness.experiment.ab_session import validate_side

    if candidates is not None:
        if good or bad:
            raise HarnessInputError("command line", "--good" if good else "--bad", good or bad, "give either "
                                    "--good and --bad or --candidates, not both")
        path = Path(candidates)
        if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
            if not path.is_file():
                raise HarnessInputError(str(path), "--candidates", None, "no such file")
            listed, where = load_candidate_file(path, declared), str(path)
        else:
            listed = parse_candidate_items([c.strip() for c in candidates.split(",") if c.strip()], declared)
            where = "command line"
    elif good and bad:
        listed, where = version_candidates(good, bad, registry_versions), "package registry"
    else:
        raise HarnessInputError("command line", "--bad" if good else "--good", None, "give --good and --bad "
                                "(PACKAGE==VERSION) or --candidates")
    check_candidates(listed, where)
    known = {**declared, **{c.environment.name: c.environment for c in listed if c.environment}}
    for i, c in enumerate(listed):
        validate_side(where, f"candidate {i} ({c.name})", c.side, known)
    return listed, known


def cell_named(cells: Sequence[CellSpec], key: str, suite_path: Path, suite: str) -> list[CellSpec]:
    """The cell of the suite `suite` names that has this key; one line naming similar keys when none has."""
    found = [c for c in cells if c.key == key]
    if not found:
        keys = [c.key for c in cells]
        close = difflib.get_close_matches(key, keys, n=3, cutoff=0.4)
        raise HarnessInputError(str(suite_path), "--cell", key, "no cell of the suite has this key"
                                + (f"; similar: {', '.join(close)}" if close else f" ({len(keys)} cells: harness run "
                                   f"{suite} --list)"))
    return found
