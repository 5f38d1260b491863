"""What a server under load says about itself: its model list (which also picks the `model` requests name),
KServe metadata (`GET /v2`: name and version, as OVMS answers), OVMS's `/v1/config` for the served model's
versions, and the HTTP `server` header. Every answer is optional: a server that gives none is still loaded."""

from __future__ import annotations

import re
from typing import Any

import httpx

from harness.core.errors import ServerError
from harness.core.schema import ServerInfo


def server_root(base_url: str) -> str:
    """The server's root under a base URL: http://host:port/v3 -> http://host:port (a path before the API
    version, as behind a gateway, stays)."""
    return re.sub(r"/v\d+/?$", "", base_url.rstrip("/"))


def _get(client: httpx.Client, url: str) -> tuple[Any, httpx.Response | None]:
    try:
        r = client.get(url)
    except (httpx.ConnectError, httpx.ConnectTimeout) as e:
        # nothing listens there: a load would only count connection errors
        raise ServerError(f"the server at {url.rsplit('/', 1)[0]} cannot be reached: {e}") from None
    except httpx.HTTPError:
        return None, None
    if r.status_code != 200:
        return None, r
    try:
        return r.json(), r
    except ValueError:
        return None, r


def listed_models(body: Any) -> list[str]:
    try:
        return [str(m["id"]) for m in body["data"]]
    except (KeyError, TypeError):
        return []


def served_model_name(base_url: str, wanted: str, listed: list[str]) -> str:
    """The `model` requests should name: `wanted` when the server lists it (or lists nothing readable), else the
    server's only model; a server listing several others is an error naming them (set `served_model`)."""
    if not listed or wanted in listed:
        return wanted
    if len(listed) == 1:
        return listed[0]
    raise ServerError(f"the server at {base_url} serves {', '.join(listed[:10])}, none named {wanted!r}: "
                                "set the scenario's served_model")


def _model_versions(config: Any, model: str) -> list[str]:
    """OVMS /v1/config: {model: {"model_version_status": [{"version": 1, "state": "AVAILABLE"}, ...]}}."""
    entry = config.get(model) if isinstance(config, dict) else None
    statuses = entry.get("model_version_status") if isinstance(entry, dict) else None
    if not isinstance(statuses, list):
        return []
    return [f"{s.get('version')}: {s.get('state')}" for s in statuses if isinstance(s, dict)]


def describe_server(base_url: str, wanted_model: str, explicit_model: str | None, headers: dict[str, str] | None,
                    timeout_s: float, tokenizer: str) -> ServerInfo:
    """Ask the server about itself and settle the served model's name (raises only for an ambiguous list)."""
    root = server_root(base_url)
    with httpx.Client(headers=headers, timeout=min(timeout_s, 10.0)) as client:
        models_body, models_response = _get(client, f"{base_url}/models")
        listed = listed_models(models_body)
        model = explicit_model or served_model_name(base_url, wanted_model, listed)
        meta, meta_response = _get(client, f"{root}/v2")
        config, _ = _get(client, f"{root}/v1/config")
    header = next((r.headers.get("server") for r in (models_response, meta_response) if r is not None
                   and r.headers.get("server")), None)
    meta = meta if isinstance(meta, dict) else {}
    return ServerInfo(endpoint=base_url, served_model=model, models=listed, server_header=header,
                      name=str(meta["name"]) if meta.get("name") else None,
                      version=str(meta["version"]) if meta.get("version") else None,
                      model_versions=_model_versions(config, model), tokenizer=tokenizer)


def prompt_token_counter(base_url: str, api: str, model: str, headers: dict[str, str] | None,
                         timeout_s: float):
    """A function: text -> the server's usage.prompt_tokens for it as a one-token request (None when the
    API or the server reports none). Used only to calibrate prompt lengths, before the load."""
    from harness.load.client import PATHS, RequestInput, http_error_text, payload

    def count(text: str) -> int | None:
        if api == "rerank":
            return None
        body = payload(RequestInput(api=api, prompt=text, max_tokens=1, stream=False), model)  # type: ignore[arg-type]
        url = f"{base_url}/{PATHS[api]}"
        try:
            r = httpx.post(url, json=body, headers=headers, timeout=timeout_s)
        except httpx.HTTPError:
            return None
        if r.status_code >= 400:  # every request of the load would be answered so: a wrong path, model or key
            raise ServerError(f"POST {url} (a one-token request, model {model!r}) was answered "
                              f"{http_error_text(r.status_code, r.text)}")
        try:
            usage = r.json().get("usage")
            tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        except (ValueError, AttributeError):
            return None
        return tokens if isinstance(tokens, int) and tokens > 0 else None

    return count
