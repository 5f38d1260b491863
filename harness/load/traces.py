"""Arrival traces for open-loop replay: when each request is sent and how long its input and output are.

Three formats, told apart by `fmt` or by the file (a .csv is Azure's; a JSON-lines file by its first record's keys):
- `mooncake`: the public Mooncake trace, JSON lines with `timestamp` (ms), `input_length`, `output_length`
  and `hash_ids` (the prompt's 512-token blocks by hash: shared ids are shared prefixes);
- `azure`: the Azure LLM inference trace CSV, columns `TIMESTAMP` (a date and time), `ContextTokens`,
  `GeneratedTokens`;
- `harness`: JSON lines `{"t_s": 0.12, "input_tokens": 512, "output_tokens": 64}` (seconds after the first;
  `hash_ids` as Mooncake's, optional).
Times become seconds after the trace's first arrival. A bad line is a HarnessInputError naming the file and
the line; arrivals out of order are sorted, with a note saying so."""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from harness.core.errors import HarnessInputError
from harness.core.input_files import (
    MAX_TRACE_BYTES,
    NotJSON,
    finite_number,
    json_objects,
    parse_json,
    read_text,
)
from harness.core.input_files import lines as text_lines
from harness.kinds.base import MAX_PROMPT_TOKENS

TraceFormat = Literal["auto", "mooncake", "azure", "harness"]
# format -> (time field, input-length field, output-length field)
FIELDS = {"mooncake": ("timestamp", "input_length", "output_length"),
          "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
          "harness": ("t_s", "input_tokens", "output_tokens")}


# Mooncake's traces hash prompts in blocks of this many tokens: requests whose `hash_ids` start alike share
# that many leading tokens (what a server's prefix cache can reuse)
BLOCK_TOKENS = 512


@dataclass(frozen=True)
class TraceRequest:
    t_s: float  # seconds after the trace's first arrival
    input_tokens: int
    output_tokens: int
    blocks: tuple[int, ...] = ()  # the prompt's BLOCK_TOKENS-token blocks by hash id (Mooncake `hash_ids`)


@dataclass(frozen=True)
class Trace:
    requests: list[TraceRequest]
    fmt: str
    notes: list[str]


def _detect(path: Path, first: str | None) -> TraceFormat:
    if path.suffix.lower() == ".csv":
        return "azure"
    if first is None:
        raise HarnessInputError(str(path), None, None, "trace holds no requests")
    try:
        keys = parse_json(first, str(path), "record", field="line 1")
    except NotJSON:
        keys = None
    if isinstance(keys, dict):
        for fmt in ("mooncake", "harness"):
            if FIELDS[fmt][0] in keys:
                return fmt
    raise HarnessInputError(str(path), "line 1", (first or "")[:80], "not a known trace format (a Mooncake or "
                            "harness JSON-lines record, or an Azure CSV): set trace_format")


def _length(path: Path, line: int, row: dict[str, Any], key: str) -> int:
    v = row.get(key)
    try:
        n = int(v) if not isinstance(v, bool) and float(v) == int(float(v)) else None  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        n = None
    if n is None or not 1 <= n <= MAX_PROMPT_TOKENS:
        raise HarnessInputError(str(path), f"line {line}.{key}", v,
                                f"a length is a whole number of tokens, 1 to {MAX_PROMPT_TOKENS}")
    return n


def _blocks(path: Path, line: int, row: dict[str, Any], input_tokens: int) -> tuple[int, ...]:
    v = row.get("hash_ids")
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 0 for h in v):
        raise HarnessInputError(str(path), f"line {line}.hash_ids", str(v)[:80], "a list of block hash ids (integers "
                                "≥ 0)")
    return tuple(v[:-(-input_tokens // BLOCK_TOKENS)])  # ids past the input length have no tokens to stand for


def _time_s(path: Path, line: int, fmt: str, v: Any) -> float:
    if fmt == "azure":
        try:
            return datetime.fromisoformat(str(v).strip()).timestamp()
        except (ValueError, OverflowError, OSError):  # not a date, or one the platform's clock cannot hold
            raise HarnessInputError(str(path), f"line {line}.TIMESTAMP", v, "not a date and time") from None
    if not finite_number(v) or v < 0:
        raise HarnessInputError(str(path), f"line {line}.{FIELDS[fmt][0]}", v, "a time is a finite number ≥ 0")
    return float(v) / 1000.0 if fmt == "mooncake" else float(v)


def _request(path: Path, line: int, fmt: str, row: dict[str, Any]) -> TraceRequest:
    t_key, in_key, out_key = FIELDS[fmt]
    tokens = _length(path, line, row, in_key)
    return TraceRequest(_time_s(path, line, fmt, row.get(t_key)), tokens, _length(path, line, row, out_key),
                        _blocks(path, line, row, tokens) if fmt != "azure" else ())


def read_trace(path: str | Path, fmt: TraceFormat = "auto") -> Trace:
    """The trace's requests in arrival order, times in seconds after the first arrival."""
    p = Path(path)
    text = read_text(p, "trace file", MAX_TRACE_BYTES)
    lines = text_lines(text)
    if fmt == "auto":
        fmt = _detect(p, next((ln for ln in lines if ln.strip()), None))
    t_key = FIELDS[fmt][0]
    rows: list[tuple[int, dict[str, Any]]] = []
    if fmt == "azure":
        reader = csv.DictReader(lines)
        try:
            columns = [str(c) for c in reader.fieldnames or []]
            if any(k not in columns for k in FIELDS["azure"]):
                raise HarnessInputError(str(p), "line 1", ",".join(columns)[:200],
                                        f"an Azure trace CSV needs the columns {', '.join(FIELDS['azure'])}")
            rows = [(reader.line_num, row) for row in reader]
        except csv.Error as e:  # a field past the csv module's limit
            raise HarnessInputError(str(p), f"line {reader.line_num + 1}", None, f"not a readable CSV row: {e}") from None
    else:
        for n, row in json_objects(p, lines, "a JSON object"):
            if t_key not in row:
                raise HarnessInputError(str(p), f"line {n}", json.dumps(row)[:80], f"no {t_key!r} field ({fmt} format)")
            rows.append((n, row))
    if not rows:
        raise HarnessInputError(str(p), None, None, "trace holds no requests")
    parsed = [_request(p, n, fmt, row) for n, row in rows]
    notes = []
    if any(b.t_s < a.t_s for a, b in zip(parsed, parsed[1:], strict=False)):
        notes.append(f"{p.name}: arrival times are not in order; replayed sorted by time")
        parsed.sort(key=lambda r: r.t_s)
    t0 = parsed[0].t_s
    return Trace([dataclasses.replace(r, t_s=r.t_s - t0) for r in parsed], fmt, notes)


TRAFFIC_DOC = """## Serving traffic: arrival schedules, cancellation, exports

Every open-loop request records `scheduled_ns`, when its schedule meant it to be sent (`start_ns` is when it
was); closed-loop requests leave it empty.

- **Constant rate** (`rate`, `burstiness` k): gaps between sends are drawn from gamma(k, 1/(k·rate)), mean 1/rate;
  k = 1 is a Poisson process, k < 1 burstier, k > 1 more regular. The first request goes at 0.
- **Ramp** (`rate` = r0, `rate_end` = r1): the rate rises (or falls) linearly, λ(t) = r0 + (r1 − r0)·t/T, over
  T = `duration_s`, or, bound by `requests` = N alone, over T = 2N / (r0 + r1) (the time in which N arrivals are
  expected). Arrivals are an inhomogeneous Poisson process made by time rescaling: unit-rate gaps (gamma(k, 1/k),
  so `burstiness` applies too) are summed to u_n and sent at t_n = Λ⁻¹(u_n), with
  Λ(t) = r0·t + (r1 − r0)·t²/(2T), i.e. t_n = 2u_n / (r0 + √(r0² + 2·u_n·(r1 − r0)/T)); past T the rate stays r1.
- **Trace** (`trace`, `trace_format`, `trace_time_scale`): each request is sent at the trace's time (seconds after
  its first arrival) × `trace_time_scale` (0.5 = twice as fast), with a prompt of the trace's input length (tokens
  of the prompt text; the server adds its special tokens or chat template) and `max_tokens` = the trace's output
  length. The whole trace is replayed unless the suite gives `requests` or `duration_s`. Formats:
  `mooncake` (JSON lines: `timestamp` ms, `input_length`, `output_length`, `hash_ids`), `azure` (the Azure LLM
  inference trace CSV: `TIMESTAMP`, `ContextTokens`, `GeneratedTokens`), `harness` (JSON lines `{"t_s": 0.12,
  "input_tokens": 512, "output_tokens": 64}`, `hash_ids` optional); `auto` takes a .csv as Azure's and JSON lines
  by their keys. A relative path is relative to the suite file; the file is read when the suite is loaded, so a
  bad line stops the run before any cell, naming the file and line. Arrivals out of order are sorted. `hash_ids`
  reproduce the trace's prefix sharing: block k of a prompt (512 tokens, Mooncake's block size) is the synthetic
  text of its hash id, the same text wherever that id appears, so requests whose ids start alike share that
  prefix exactly as in the trace; a last partial block is the start of its id's text, and tokens past the listed
  blocks are text of the request's own. Warm-up requests take no blocks (they would fill the prefix cache ahead
  of the trace).
- **Replay** (`replay_payloads`): the bodies of a run's `payloads/<cell>.jsonl`, sent byte for byte (warm-up ones
  first, as warm-up), the measured ones at their recorded send times × `trace_time_scale`.
- **Cancellation** (`cancel_fraction`, `cancel_after_tokens` = N): each measured request is cancelled with
  probability `cancel_fraction` (seeded); a cancelled request closes its connection after N content chunks. It is
  neither a failure (`error_rate_pct` is over the other requests) nor a Sample; `cancelled_requests` counts them,
  and `cancelled_server_tokens` says what the server did with the rest (see the table).

Exports (`export_requests`, on by default), beside results.json rather than in it, named by the cell's work folder:
`requests/<cell>.jsonl`, one line per request in send order (warm-up first, `"warmup": true`): `scheduled_ms`,
`send_ms`, `chunk_ms` (each content chunk), `end_ms` (all ms after the measured load's start), the HTTP phases
(`http_connect_ms`, `http_send_ms`, `http_wait_ms`, `http_receive_ms`, `connection_reused`), `status`, `ok`,
`cancelled`, `error_kind`, `error`, `prompt_tokens`, `completion_tokens`; and `payloads/<cell>.jsonl`, the exact
JSON body of each request (`{"index", "warmup", "t_s", "api", "body"}`). Headers, which carry the API key, are
never written.
"""
