"""pytest front door: `pytest suites/ --suite suites/nightly.yaml` runs every cell as a test item.

A cell passes when it ran (a missing device makes it a skip), every recorded check passed, and,
with `--baseline REF`, no metric regressed against the baseline's cell of the same key. Cross-cell checks are
made against the cells the session ran before (the fp16 reference runs before its int8/int4 cells); an accuracy
gate whose reference is not in the session (e.g. `-m int4`) is not judged (not run, with the reason). Items carry
markers for precision, device, scenario kind and model (`-m "int4 and not speculative"`). With
pytest-benchmark installed, each cell's per-iteration e2e times join its JSON/storage
(`--benchmark-json`, `--benchmark-autosave`), the LLM metrics in `extra_info`. `--harness-set KEY=VALUE` (and
the HARNESS_SET environment variable) change the suites' fields as `harness run --set` does.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("harness", "OpenVINO GenAI benchmark harness")
    g.addoption("--suite", action="append", default=[], help="suite file whose cells become test items")
    g.addoption("--baseline", default=None, help="run dir, results.json, run id, baseline name or last-good")
    g.addoption("--harness-out", default=None, help="run directory for the results (default: a temp dir)")
    g.addoption("--harness-cache", default=None, help="model cache (default: ~/.cache/ov-genai-harness)")
    g.addoption("--harness-db", default=None, help="history database URL for --baseline references")
    g.addoption("--harness-set", action="append", default=[], metavar="KEY=VALUE",
                help="change a field of the suites, as harness run --set (repeatable; HARNESS_SET applies first)")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    wanted = {Path(s).resolve() for s in parent.config.getoption("suite")}
    if file_path.suffix in (".yaml", ".yml") and file_path.resolve() in wanted:
        # imported only where a suite is collected: every pytest run in this environment loads this plugin
        from harness.cli.pytest_items import SuiteFile

        return SuiteFile.from_parent(parent, path=file_path)
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    hr = getattr(session.config, "_harness_run", None)
    if hr is None:
        return
    from harness.analyze.session_checks import unjudged_accuracy_gates
    from harness.execute.run_record import assemble, now_iso
    from harness.records.store import write_metadata, write_results

    hr.meta.finished_at = now_iso()
    write_metadata(hr.run_dir, hr.meta)
    results = assemble(hr.run_dir, hr.meta)
    results.cells = [unjudged_accuracy_gates(c) for c in results.cells]  # as the items judged them
    write_results(hr.run_dir, results)
