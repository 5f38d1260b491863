"""`harness serve MODEL`: an OpenAI-compatible server shaped like OpenVINO Model Server (harness/serve/)."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.cli.common import CacheOpt, err_console
from harness.core.errors import HarnessInputError, ModelPreparationError, error_line
from harness.models.cache import default_cache_dir


def serve(
    model: Annotated[str, typer.Argument(help="IR dir, Hugging Face dir or id, or synthetic:NAME (exported to fp16)")],
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one)")] = 8000,
    device: str = "CPU",
    properties: Annotated[str, typer.Option(help="OpenVINO properties as a JSON object")] = "{}",
    embeddings: Annotated[str | None, typer.Option(help="also serve /v3/embeddings with this model")] = None,
    rerank: Annotated[str | None, typer.Option(help="also serve /v3/rerank with this model")] = None,
    cache_dir: CacheOpt = None,
    scheduler: Annotated[str, typer.Option(help="SchedulerConfig fields of the pipeline as a JSON object, e.g. "
                                           '\'{"enable_prefix_caching": true}\'')] = "{}",
) -> None:
    """OpenAI-compatible server shaped like OpenVINO Model Server (/v3/chat/completions, /v3/completions,
    /v3/embeddings, /v3/rerank, /metrics) on a ContinuousBatchingPipeline. MODEL may also be an
    embedding or rerank model alone."""
    from harness.core.input_files import parse_json
    from harness.core.schema import CompressionSpec
    from harness.models.prepare import prepare_model
    from harness.serve.server import serve as run_server

    props = parse_json(properties, "command line", "value", field="--properties", value=properties)
    if not isinstance(props, dict):
        raise HarnessInputError("command line", "--properties", properties, "expected a JSON object")
    sched = parse_json(scheduler, "command line", "value", field="--scheduler", value=scheduler)
    if not isinstance(sched, dict):
        raise HarnessInputError("command line", "--scheduler", scheduler, "expected a JSON object")
    from harness.serve.server import scheduler_config

    try:
        scheduler_config(sched)
    except ValueError as e:
        raise HarnessInputError("command line", "--scheduler", scheduler, str(e)) from None
    _usable_device(device)
    _resolvable(host, port)
    cache_dir = cache_dir or default_cache_dir()
    log = lambda m: err_console.print(m)  # noqa: E731
    model_dir = prepare_model(model, "fp16", CompressionSpec(), cache_dir, log=log).path
    emb_dir = prepare_model(embeddings, "fp16", CompressionSpec(), cache_dir, log=log).path if embeddings else None
    rerank_dir = prepare_model(rerank, "fp16", CompressionSpec(), cache_dir, log=log).path if rerank else None
    err_console.print(f"serving {model_dir} on http://{host}:{port}/v3")
    try:
        run_server(model_dir, host=host, port=port, device=device, properties=props, embedding_model_dir=emb_dir,
                   rerank_model_dir=rerank_dir, scheduler=sched)
    except RuntimeError as e:  # the runtime refused the model or the properties while loading
        raise ModelPreparationError(f"cannot serve {model_dir} on {device}: {error_line(e)}") from None
    except SystemExit as e:  # uvicorn could not start after all (it logged why); its 3 is not "nothing judged"
        if e.code in (0, None):
            raise
        raise HarnessInputError("command line", "--port", port, f"the server did not start on {host}:{port} "
                                "(the reason is logged above)") from None


def _usable_device(device: str) -> None:
    """A device string OpenVINO accepts and this machine has, or one line naming it."""
    import openvino as ov

    from harness.plan.devices import missing_devices, validate_device_string

    try:
        validate_device_string(device)
    except ValueError as e:
        raise HarnessInputError("command line", "--device", device, str(e)) from None
    available = list(ov.Core().available_devices)
    if missing := missing_devices(device, available):
        raise HarnessInputError("command line", "--device", device,
                                f"{', '.join(missing)} not available here (available: {', '.join(available) or 'none'})")


def _resolvable(host: str, port: int) -> None:
    """A --host this machine cannot resolve or listen on, or a --port in use, is bad input, said before any model
    is prepared (uvicorn would exit 3)."""
    import errno
    import socket

    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise HarnessInputError("command line", "--host", host, f"cannot be resolved here: {e}") from None
    # a port in use, or an address of another machine
    family, _, _, _, address = found[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind(address)
        except OSError as e:
            raise HarnessInputError("command line", "--port" if e.errno == errno.EADDRINUSE else "--host",
                                    port if e.errno == errno.EADDRINUSE else host,
                                    f"cannot listen on {host}:{port}: {e.strerror or e}") from None
