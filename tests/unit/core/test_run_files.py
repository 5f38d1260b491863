"""Writes into a run directory never follow a symbolic link out of it (harness/records/run_files.py)."""

from __future__ import annotations

import os

import pytest

from harness.core.errors import HarnessInputError
from harness.records.run_files import checked_path, open_for_append, open_for_write, refuse_links, write_whole
from harness.records.store import CELLS, append_cell, write_metadata, write_results
from tests.factories import result, run, spec


@pytest.fixture
def outside(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    return target


@pytest.mark.parametrize("name", [CELLS, "results.json", "metadata.json", "report.md"])
def test_no_write_follows_a_link_at_the_name(tmp_path, outside, name):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / name).symlink_to(outside)
    for write in (lambda: write_whole(run_dir, name, "x"), lambda: open_for_append(run_dir, name),
                  lambda: open_for_write(run_dir, name)):
        with pytest.raises(HarnessInputError, match="symbolic link"):
            write()
    store_write = {CELLS: lambda: append_cell(run_dir, result(spec(), [])),
                   "results.json": lambda: write_results(run_dir, run([])),
                   "metadata.json": lambda: write_metadata(run_dir, run([]).metadata)}.get(name)
    for write in (store_write, lambda: refuse_links(run_dir)):
        if write is not None:
            with pytest.raises(HarnessInputError, match="symbolic link"):
                write()
    assert outside.read_text() == "precious\n"


def test_no_write_goes_through_a_linked_folder_or_leaves_by_dots(tmp_path, outside):
    run_dir = tmp_path / "run"
    (run_dir / "work").mkdir(parents=True)
    (run_dir / "work" / "cell").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(HarnessInputError, match="symbolic link"):
        write_whole(run_dir, "work/cell/elsewhere.txt", "x")
    with pytest.raises(HarnessInputError, match="outside"):
        checked_path(run_dir, "../elsewhere.txt")
    with pytest.raises(HarnessInputError, match="symbolic link inside the run directory"):
        refuse_links(run_dir)
    assert outside.read_text() == "precious\n"


def test_ordinary_writes_work_and_replace_whole(tmp_path):
    run_dir = tmp_path / "results-on-another-disk"
    real = tmp_path / "real"
    real.mkdir()
    run_dir.symlink_to(real, target_is_directory=True)  # the folder itself may be a link
    write_whole(run_dir, "a.txt", "one")
    write_whole(run_dir, "a.txt", "two")
    with open_for_append(run_dir, "b.jsonl") as f:
        f.write(b"1\n")
    with open_for_append(run_dir, "b.jsonl") as f:
        f.write(b"2\n")
    assert (real / "a.txt").read_text() == "two" and (real / "b.jsonl").read_text() == "1\n2\n"
    assert sorted(os.listdir(real)) == ["a.txt", "b.jsonl"]  # no temporary left behind
    refuse_links(run_dir)
