"""Request bodies of `harness serve` and its errors in OpenAI's shape, shared by every router."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from harness.serve.api.state import ServerState, server_state
from harness.serve.server_metrics import Method

log = logging.getLogger("harness.serve")

# Bounds a request can name before the model's context caps it: no number that overflows the runtime.
MAX_TOKENS_BOUND = 2**31 - 1


def _unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (it holds a lone surrogate)") from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]


class _Body(BaseModel):
    # a boolean or a text where a number belongs is refused, not read as 1 or parsed
    model_config = ConfigDict(strict=True)


class ImageUrl(_Body):
    url: Text


class ContentPart(_Body):
    """One OpenAI content part: {"type": "text", "text"} or {"type": "image_url", "image_url": {"url"}}."""

    type: Literal["text", "image_url"]
    text: Text | None = None
    image_url: ImageUrl | None = None

    @model_validator(mode="after")
    def _has_its_field(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a text content part needs `text`")
        if self.type == "image_url" and self.image_url is None:
            raise ValueError("an image_url content part needs `image_url`")
        return self


class ChatMessage(_Body):
    role: Text
    # a text, or content parts (text and images) as OVMS accepts them for VLMs
    content: Text | list[ContentPart] | None = ""

    @model_validator(mode="before")
    @classmethod
    def _parts_said_plainly(cls, data: Any) -> Any:
        """A bad content part named by its place (the union's own error would only say "not a string")."""
        content = data.get("content") if isinstance(data, dict) else None
        if content is None or isinstance(content, str):
            return data
        if not isinstance(content, list):
            raise ValueError(f"content must be a text or a list of content parts, got {type(content).__name__}")
        for k, part in enumerate(content):
            try:
                ContentPart.model_validate(part)
            except ValidationError as e:
                first = e.errors()[0]
                where = "".join(f".{x}" for x in first.get("loc", ()))
                raise ValueError(f"content.{k}{where}: {first['msg'].removeprefix('Value error, ')}") from None
        return data

    @model_validator(mode="after")
    def _parts_not_empty(self) -> ChatMessage:
        if isinstance(self.content, list) and not self.content:
            raise ValueError("content: the content array is empty")
        return self

    def text(self) -> str:
        """The message's text (content parts: their texts joined)."""
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""

    def image_urls(self) -> list[str]:
        if not isinstance(self.content, list):
            return []
        return [p.image_url.url for p in self.content if p.type == "image_url" and p.image_url is not None]


class StreamOptions(_Body):
    include_usage: bool = False


class GenerationFields(_Body):
    model: Text = ""
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    min_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS_BOUND)
    ignore_eos: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=MAX_TOKENS_BOUND)
    seed: int | None = Field(None, ge=0, le=2**64 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @property
    def asked_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @model_validator(mode="after")
    def _min_within_max(self) -> GenerationFields:
        if self.min_tokens and self.asked_tokens and self.min_tokens > self.asked_tokens:
            raise ValueError(f"min_tokens ({self.min_tokens}) is above max_tokens ({self.asked_tokens})")
        return self


class ChatRequest(GenerationFields):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(GenerationFields):
    prompt: Text


class RerankRequest(_Body):
    model: Text = ""
    query: Text
    documents: list[Text] = Field(min_length=1)
    top_n: int | None = Field(None, ge=1, le=MAX_TOKENS_BOUND)
    return_documents: bool = False


class EmbeddingRequest(_Body):
    model: Text = ""
    input: Text | list[Text]
    encoding_format: Literal["float"] = "float"


class ApiError(Exception):
    """A request the server refuses, answered in OpenAI's error shape."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def require_served_model(state: ServerState, asked: str, served: str, method: Method = "Unary") -> None:
    """404 (counted as a rejection) unless the request names the served model or none."""
    if asked and asked != served:
        state.metrics.rejected(served, method)
        raise ApiError(404, f"The model `{asked}` does not exist (this server serves `{served}`)", "model",
                       "model_not_found")


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "literal"}


def install_error_handlers(app: FastAPI) -> None:
    """Every refusal and failure answered in OpenAI's error shape."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        state = server_state(request)
        state.metrics.rejected(state.endpoint_name(request.url.path))
        first = exc.errors()[0] if exc.errors() else {}
        # a union's branch tags ("str", "function-after[...]") are not fields: the param names fields only
        where = ".".join(str(x) for x in first.get("loc", ())[1:]
                         if isinstance(x, int) or ("[" not in x and x not in _TYPE_TAGS)) or None
        message = str(first.get("msg", "invalid request"))
        if where is None and first.get("type") in ("model_attributes_type", "dict_type", "json_invalid", "missing"):
            message = f"the request body must be a JSON object ({message})"
        return JSONResponse(status_code=400, content=ApiError(400, f"{where}: {message}" if where else message,
                                                              where).body())

    @app.exception_handler(ApiError)
    async def _refused(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.body())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content=ApiError(exc.status_code, str(exc.detail)).body())

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # the detail (runtime paths, tracebacks) stays in the server's log, never in a client's body
        log.exception("request %s failed", request.url.path)
        return JSONResponse(status_code=500, content=ApiError(500, "internal server error").body())
