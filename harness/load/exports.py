"""A serving cell's per-request exports, written beside the run's results (not into results.json):

- RUN/requests/<cell>.jsonl: one line per request (warm-up first, marked), every clock reading in ms after
  the measured load's start (warm-up ones are negative): scheduled and actual send, each content chunk,
  end, the HTTP phases, status, error, cancellation and token counts;
- RUN/payloads/<cell>.jsonl: the exact JSON body of each request in send order, warm-up marked, with its send
  time in s after the load's start and the API path; `replay_payloads` sends these again byte for byte.

Only bodies are written: headers (which carry the API key) never are."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessInputError
from harness.core.input_files import MAX_PAYLOADS_BYTES, finite_number, json_objects, lines, read_text
from harness.kinds.serving import Api
from harness.load.client import PATHS, RequestOutput, encode_body
from harness.records.run_files import open_for_write


@dataclass(frozen=True)
class RecordedPayload:
    warmup: bool
    t_s: float  # send time after the load's start (warm-up: before it, negative)
    api: Api
    body: dict[str, Any]


def export_dirs(workdir: Path) -> tuple[Path, Path, str]:
    """(requests folder, payloads folder, file stem) of a cell whose workdir is RUN/work/<cell slug>."""
    run = workdir.parent.parent
    return run / "requests", run / "payloads", workdir.name


def exported_files(workdir: Path) -> list[Path]:
    """The export files a cell wrote (none for a cell that exports nothing)."""
    req_dir, pay_dir, stem = export_dirs(workdir)
    return [p for p in (req_dir / f"{stem}.jsonl", pay_dir / f"{stem}.jsonl") if p.is_file()]


def _ms(ns: int | None, start_ns: int) -> float | None:
    return None if ns is None else round((ns - start_ns) / 1e6, 3)


def request_record(o: RequestOutput, warmup: bool, start_ns: int) -> dict[str, Any]:
    sent = (o.start_ns - start_ns) / 1e6
    return {"index": o.index, "warmup": warmup, "scheduled_ms": _ms(o.scheduled_ns, start_ns),
            "send_ms": round(sent, 3), "chunk_ms": [round(sent + c, 3) for c in o.chunk_offsets_ms],
            "end_ms": _ms(o.end_ns, start_ns), **o.http, "status": o.status, "ok": o.ok, "cancelled": o.cancelled,
            "error_kind": o.error_kind, "error": o.error or None, "prompt_tokens": o.prompt_tokens,
            "completion_tokens": o.completion_tokens}


def write_exports(workdir: Path, api: str, warmup: list[RequestOutput], measured: list[RequestOutput],
                  start_ns: int) -> tuple[Path, Path]:
    """Write both files for one cell; requests in send order."""
    req_dir, pay_dir, stem = export_dirs(workdir)
    req_dir.mkdir(parents=True, exist_ok=True)
    pay_dir.mkdir(parents=True, exist_ok=True)
    order = sorted([(o, True) for o in warmup] + [(o, False) for o in measured], key=lambda x: x[0].start_ns)
    req_path, pay_path = req_dir / f"{stem}.jsonl", pay_dir / f"{stem}.jsonl"
    with open_for_write(req_dir, req_path.name) as f:
        for o, w in order:
            f.write(json.dumps(request_record(o, w, start_ns)) + "\n")
    with open_for_write(pay_dir, pay_path.name) as f:
        for o, w in order:
            if o.body:
                body = json.loads(o.body)
                f.write(json.dumps({"index": o.index, "warmup": w, "t_s": round((o.start_ns - start_ns) / 1e9, 6),
                                    "api": api, "body": body}, ensure_ascii=False) + "\n")
    return req_path, pay_path


def read_payloads(path: str | Path) -> list[RecordedPayload]:
    """A payloads file as written by write_exports (HarnessInputError naming the line when it is not one)."""
    p = Path(path)
    shape = ("a recorded payload: {\"warmup\": bool, \"t_s\": seconds, \"api\": chat|completions|embeddings|rerank, "
             "\"body\": {...}}")
    out = []
    for n, row in json_objects(p, lines(read_text(p, "payloads file", MAX_PAYLOADS_BYTES)), shape):
        if not (isinstance(row.get("body"), dict) and isinstance(row.get("api"), str) and row["api"] in PATHS
                and finite_number(row.get("t_s")) and isinstance(row.get("warmup"), bool)):
            raise HarnessInputError(str(p), f"line {n}", json.dumps(row)[:80], f"expected {shape}")
        try:
            encode_body(row["body"])
        except ValueError as e:
            raise HarnessInputError(str(p), f"line {n}.body", None, str(e)) from None
        out.append(RecordedPayload(row["warmup"], float(row["t_s"]), row["api"], row["body"]))
    if not any(not r.warmup for r in out):
        raise HarnessInputError(str(p), None, None, "payloads file holds no measured request")
    return out
