"""Reading files from outside the harness — suites, bisect candidates, prompt sets, traces, recorded payloads,
run records (results.json, cells.jsonl, metadata.json), A/B records, environment probes and manifests, model
folders' JSON files and GGUF headers — through one loader, so that every one of them is refused the same way:
one HarnessInputError naming the file, the line or field and the value, never a traceback, for

- a file larger than its kind's limit (checked with stat before a byte is read), or one that is not a regular
  file (a FIFO or a device would be read without end);
- bytes that are not UTF-8 (a leading byte-order mark is dropped), or a NUL byte in text;
- text that is not JSON / YAML, numbers Python refuses to convert (over 4300 digits), nesting deeper than
  MAX_NESTING, YAML aliases that expand too far or refer to themselves, a key given twice;
- a top level of the wrong kind (the caller says which);
- with `strict` (text the harness passes on: prompts, names, packages, request bodies), a string holding a lone
  surrogate (a `\\ud800` escape: no UTF-8 writer can write it) or a NUL character (C strings end there)."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.core.errors import HarnessInputError

KiB, MiB, GiB = 2**10, 2**20, 2**30

# Size limits, one per kind of file, checked with stat before reading (a wrong path to a model's weights, a log
# or /dev/zero is refused at once instead of being read whole into memory and parsed).
# A suite or a candidates file is written by hand: the largest shipped suite (nightly.yaml) is 5.3 KiB.
MAX_SUITE_BYTES = 4 * MiB
# A prompt set: every prompt of it is kept in each cell's spec in results.json, so tens of MB are already a lot.
MAX_PROMPT_FILE_BYTES = 64 * MiB
# An arrival trace: a request is one line of tens to a few hundred bytes (Mooncake's block hashes the longest),
# so a GiB is millions of requests, more than one host replays; the file is read whole, and its lines split.
MAX_TRACE_BYTES = 1 * GiB
# A recorded payloads file holds every request body of a serving cell (prompts included) as the harness wrote it.
MAX_PAYLOADS_BYTES = 1 * GiB
# results.json and cells.jsonl keep every raw sample (the test runs here write about 1 MB); json.loads needs
# several times a file's size in memory, so a GiB is as far as a report machine should be asked to go.
MAX_RECORDS_BYTES = 1 * GiB
# metadata.json (the run's host, stack and options) and an environment's manifest: a few KB.
MAX_METADATA_BYTES = 16 * MiB
# ab.json: the A/B rounds and per-cell verdicts, without raw samples.
MAX_AB_BYTES = 256 * MiB
# A model folder's config.json, generation_config.json, model_index.json, tokenizer_config.json, ...: a few KB;
# an image classifier's id2label for 21k classes is about 1 MiB.
MAX_MODEL_CONFIG_BYTES = 16 * MiB
# tokenizer.json: a 256k-token vocabulary with its merges is some tens of MB.
MAX_TOKENIZER_BYTES = 256 * MiB
# An environment's version probe prints one line: a JSON object of a dozen version strings.
MAX_PROBE_OUTPUT_BYTES = 1 * MiB
# Nesting: the deepest files the harness reads are results.json (8 levels in each of the 139 on this machine)
# and a tokenizer.json (5). 64 leaves room for any honest file and keeps every recursive reader after the
# loader (pydantic, the YAML composer, the reports) far from Python's recursion limit.
MAX_NESTING = 64
# Aliases let a few hundred bytes of YAML stand for billions of values ("billion laughs"): bound what a document
# may expand to before anything walks it.
MAX_YAML_NODES = 100_000
# GGUF: the smallest key/value entry (an empty key, a type, a one-byte value) and tensor entry (an empty name,
# its dimension count, type and offset): a header that counts more than the file can hold is refused before a
# reader loops over it.
GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
GGUF_MIN_KV_BYTES = 8 + 4 + 1
GGUF_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8

_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_BAD_CHAR = re.compile(r"[\x00\ud800-\udfff]")


def _size(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


def _at(*parts: str | None) -> str | None:
    return ": ".join(p for p in parts if p) or None


def _checked(path: Path, what: str, st: os.stat_result, limit: int | None) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise HarnessInputError(str(path), None, None, f"{what} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise HarnessInputError(str(path), None, None, f"{what} is not a regular file (a pipe, socket or device)")
    if limit is not None and st.st_size > limit:
        raise HarnessInputError(str(path), None, f"{st.st_size} bytes",
                                f"{what} larger than {_size(limit)}, the most a {what} may be")


def _read(path: Path, what: str, limit: int | None, size: int) -> bytes:
    """Up to `size` bytes of a regular file of at most `limit` bytes: checked with stat before it is opened
    (nothing is opened that is too large or no file), and again on the open file (a FIFO put in its place
    meanwhile is opened without blocking and refused unread)."""
    try:
        _checked(path, what, path.stat(), limit)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            _checked(path, what, os.fstat(f.fileno()), limit)
            return f.read(size)
    except FileNotFoundError:
        raise HarnessInputError(str(path), None, None, f"{what} not found") from None
    except OSError as e:
        raise HarnessInputError(str(path), None, None, f"{what} not readable: {e.strerror or e}") from None


def read_bytes(path: Path, what: str, limit: int) -> bytes:
    """The file's bytes; `what` names it in errors ("trace file", "payloads file", ...). Refused before reading
    when it is missing, not a regular file or larger than `limit` bytes."""
    raw = _read(path, what, limit, limit + 1)
    if len(raw) > limit:  # it grew after the stat
        raise HarnessInputError(str(path), None, f"over {limit} bytes",
                                f"{what} larger than {_size(limit)}, the most a {what} may be")
    return raw


def decode(raw: bytes, where: str, what: str) -> str:
    """UTF-8 text of `raw` (a leading byte-order mark dropped); HarnessInputError naming the line for bytes that
    are not UTF-8 or a NUL byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise HarnessInputError(where, f"line {line}", None, f"{what} not valid UTF-8 (byte {e.start})") from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise HarnessInputError(where, f"line {line}", None, f"{what} holds a NUL byte (a binary file?)")
    return text.removeprefix("\ufeff")


def read_text(path: Path, what: str, limit: int) -> str:
    """The file's text: read_bytes, then decode."""
    return decode(read_bytes(path, what, limit), str(path), what)


def lines(text: str) -> list[str]:
    """The lines of a JSON-lines file: split at newlines only (str.splitlines would also split inside a JSON
    string holding U+2028 or other separators that JSON allows raw)."""
    return [ln.removesuffix("\r") for ln in text.split("\n")]


def _tree_problem(value: Any, strings: bool) -> tuple[str, str] | None:
    """(where, what is wrong) for a parsed value nested deeper than MAX_NESTING or, with `strings`, holding a
    lone surrogate or a NUL character in a string (keys included); None when it is fine. Iterative: the value
    may be as deep as the parser allowed."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        v, depth, at = stack.pop()
        if isinstance(v, dict | list):
            if depth >= MAX_NESTING:
                return "", f"nested deeper than {MAX_NESTING} levels"
            pairs = v.items() if isinstance(v, dict) else enumerate(v)
            for k, x in pairs:
                here = f"{at}[{k}]" if isinstance(v, list) else (f"{at}.{str(k)[:40]}" if at else str(k)[:40])
                if strings and isinstance(k, str) and _BAD_CHAR.search(k):
                    return at or "top level", _bad_string(k, "a key")
                if isinstance(x, dict | list) or (strings and isinstance(x, str)):
                    stack.append((x, depth + 1, here))
        elif isinstance(v, str) and _BAD_CHAR.search(v):
            return at or "top level", _bad_string(v, "a string")
    return None


def _bad_string(s: str, which: str) -> str:
    found = _BAD_CHAR.search(s)
    char = found.group() if found else ""
    if char == "\x00":
        return f"{which} holds a NUL character"
    return f"{which} holds a lone surrogate (\\u{ord(char or '?'):04x}), which no UTF-8 text can carry"


class NotJSON(HarnessInputError):
    """Text that is not JSON at all (as against JSON refused for its depth or its strings)."""


def parse_json(text: str, file: str, what: str, *, field: str | None = None, value: object = None,
               strict: bool = True) -> Any:
    """The JSON value in `text`. HarnessInputError (file, field, value) for text that is not JSON, nested deeper
    than MAX_NESTING, and with `strict` for a string holding a lone surrogate or a NUL character."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}" if field is None else f"column {e.colno}"
        raise NotJSON(file, _at(field, where), value, f"{what} not valid JSON: {e.msg}") from None
    except RecursionError:
        raise HarnessInputError(file, field, value, f"{what} nested deeper than {MAX_NESTING} levels") from None
    except ValueError as e:  # a number of more digits than Python converts
        raise HarnessInputError(file, field, value, f"{what} not readable: {str(e).split(';')[0][:200]}") from None
    problem = _tree_problem(data, strict and _SUSPECT_ESCAPE.search(text) is not None)
    if problem:
        where, why = problem
        raise HarnessInputError(file, _at(field, where[:200]), value, why if where else f"{what} {why}")
    return data


def finite_number(v: object) -> bool:
    """Whether a parsed value is a number Python can hold as a float: not a bool, not NaN or infinite, and not
    an integer past a float's range (JSON allows 10**400; math.isfinite raises OverflowError on it)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _expect(data: Any, expect: type | tuple[type, ...] | None, file: str, field: str | None, what: str) -> None:
    if expect is not None and not isinstance(data, expect):
        kinds: dict[type, str] = {dict: "a JSON object", list: "a list"}
        names = " or ".join(kinds.get(t, t.__name__) for t in (expect if isinstance(expect, tuple) else (expect,)))
        raise HarnessInputError(file, field, type(data).__name__, f"{what} is not {names}")


def load_json(path: Path, what: str, limit: int, *, expect: type | tuple[type, ...] | None = dict,
              strict: bool = False) -> Any:
    """A JSON file: read_text, then parse_json; its top level one of `expect` (a JSON object by default)."""
    data = parse_json(read_text(path, what, limit), str(path), what, strict=strict)
    _expect(data, expect, str(path), None, what)
    return data


def json_objects(path: Path, lines: list[str], expected: str, strict: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; `expected` says what a line should be when one is not
    a JSON object."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = parse_json(line, str(path), "record", field=f"line {n}", strict=strict)
        except NotJSON:
            obj = None
        if not isinstance(obj, dict):
            raise HarnessInputError(str(path), f"line {n}", line[:80], f"expected {expected}")
        yield n, obj


def invalid(e: ValidationError, file: str, what: str) -> HarnessInputError:
    """One line for a pydantic ValidationError: the first problem's field and message, and how many more."""
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or None
    more = f" (+{len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
    return HarnessInputError(file, loc, None, f"{what}: {err['msg']}{more}")


class YAMLRefused(ValueError):
    """A document refused before it is built."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses collections nested deeper than MAX_NESTING (PyYAML composes
    recursively: 100000 `[` would end in RecursionError)."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        opens = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if opens:
            self.depth += 1
            if self.depth > MAX_NESTING:
                mark = self.peek_event().start_mark
                raise YAMLRefused(f"line {mark.line + 1}: nested deeper than {MAX_NESTING} levels")
        try:
            return super().compose_node(parent, index)  # type: ignore[no-untyped-call]
        finally:
            if opens:
                self.depth -= 1


def _expanded(node: yaml.Node, memo: dict[int, tuple[int, int] | None]) -> tuple[int, int]:
    """(nodes, levels of collections) the document holds once every alias is expanded (each shared node counted
    once per use); YAMLRefused past MAX_YAML_NODES or MAX_NESTING, or for an alias inside the node it names."""
    key = id(node)
    if key in memo:
        found = memo[key]
        if found is None:
            raise YAMLRefused(f"line {node.start_mark.line + 1}: an alias refers to the collection that holds it")
        return found
    memo[key] = None  # in progress
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [x for pair in node.value for x in pair]
    total, deepest = 1, 0
    for child in children:
        size, levels = _expanded(child, memo)
        total, deepest = total + size, max(deepest, levels)
        if total > MAX_YAML_NODES:
            raise YAMLRefused(f"expands to more than {MAX_YAML_NODES} values once its aliases are resolved "
                              "(an alias bomb?)")
    levels = deepest + (1 if isinstance(node, yaml.CollectionNode) else 0)
    if levels > MAX_NESTING:
        raise YAMLRefused(f"line {node.start_mark.line + 1}: nested deeper than {MAX_NESTING} levels once its "
                          "aliases are resolved")
    memo[key] = (total, levels)
    return total, levels


def _duplicate_key(node: yaml.Node, seen: set[int]) -> str | None:
    """'line N: key K appears twice' for the first mapping that repeats a key (YAML keeps the last silently)."""
    if id(node) in seen:
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                if k.value in keys:
                    return f"line {k.start_mark.line + 1}: key {k.value!r} appears twice in one mapping"
                keys.add(k.value)
    children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else
                node.value if isinstance(node, yaml.SequenceNode) else [])
    for child in children:
        if found := _duplicate_key(child, seen):
            return found
    return None


def bounded_yaml(raw: str | bytes) -> Any:
    """The document in `raw` (safe tags only); YAMLRefused when it nests or expands too far or repeats a key,
    yaml.YAMLError when it is not YAML."""
    loader = _BoundedLoader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded(node, {})
        if duplicate := _duplicate_key(node, set()):
            raise YAMLRefused(duplicate)
        return loader.construct_document(node)
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def parse_yaml(source: str | bytes, file: str, what: str, *, field: str | None = None, value: object = None,
               strict: bool = True) -> Any:
    """The YAML document in `source` (safe tags only, bounded as bounded_yaml says); every way it can fail is
    one HarnessInputError (file, field, value)."""
    try:
        data = bounded_yaml(source)
    except YAMLRefused as e:
        raise HarnessInputError(file, field, value, str(e)) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = e.problem or str(e).splitlines()[0]
        raise HarnessInputError(file, _at(field, where), value, f"malformed YAML: {problem}") from None
    except yaml.YAMLError as e:
        raise HarnessInputError(file, field, value, f"malformed YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise HarnessInputError(file, field, value, f"{what} nested deeper than {MAX_NESTING} levels") from None
    except (ValueError, OverflowError) as e:  # a value its constructor refuses (an int of 5000 digits, a date)
        raise HarnessInputError(file, field, value, f"{what} has a value YAML cannot build: "
                                f"{str(e).split(';')[0][:200]}") from None
    problem = _tree_problem(data, strict)
    if problem:
        where, why = problem
        raise HarnessInputError(file, _at(field, where[:200]), value, why if where else f"{what} {why}")
    return data


def load_yaml(path: Path, what: str, limit: int, *, strict: bool = True) -> Any:
    """A YAML file (read_text, then parse_yaml)."""
    return parse_yaml(read_text(path, what, limit), str(path), what, strict=strict)


@dataclass(frozen=True)
class GgufHeader:
    version: int
    tensors: int
    kvs: int
    byte_order: str  # "<" or ">"


def gguf_header(path: Path) -> GgufHeader:
    """A GGUF file's fixed header, checked before any GGUF reader walks the file: the magic, a version the
    readers know, and tensor and key/value counts the file's size can hold (a reader loops over them)."""
    what = "GGUF file"
    head = _read(path, what, None, 24)  # no size limit: the weights follow the header
    size = path.stat().st_size
    if len(head) < 24:
        raise HarnessInputError(str(path), None, f"{len(head)} bytes", f"{what} cut short: no whole header (24 bytes)")
    if head[:4] != GGUF_MAGIC:
        raise HarnessInputError(str(path), "magic", head[:4], f"not a {what} (one starts with the bytes GGUF)")
    order = "<"
    version = struct.unpack("<I", head[4:8])[0]
    if version & 0xFFFF == 0:  # written on a machine of the other byte order
        order, version = ">", struct.unpack(">I", head[4:8])[0]
    if version not in GGUF_VERSIONS:
        raise HarnessInputError(str(path), "version", version,
                                f"{what} version not read here (known: {', '.join(map(str, GGUF_VERSIONS))})")
    tensors, kvs = struct.unpack(f"{order}QQ", head[8:24])
    room = size - 24
    if kvs * GGUF_MIN_KV_BYTES > room:
        raise HarnessInputError(str(path), "kv_count", kvs, f"more metadata entries than the {what}'s "
                                f"{size} bytes can hold (cut short or damaged)")
    if tensors * GGUF_MIN_TENSOR_BYTES + kvs * GGUF_MIN_KV_BYTES > room:
        raise HarnessInputError(str(path), "tensor_count", tensors, f"more tensors than the {what}'s "
                                f"{size} bytes can hold (cut short or damaged)")
    return GgufHeader(version, tensors, kvs, order)
