"""Every failure as OpenAI's error JSON, so clients report it the way they report OpenAI's.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens",
               "code": "..."}}

The status says whose fault it is (400 bad request, 401 no key, 404 unknown
model or path, 413 body too large, 503 busy with Retry-After); the message
says what to change. A bad request never takes the server down: each one is
answered and the next is served.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

M = TypeVar("M", bound=BaseModel)


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind, self.headers = kind, headers

    def body(self) -> dict[str, str | None]:
        return {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.body()}, status_code=self.status, headers=self.headers)


def busy(reason: str) -> APIError:
    """503: every row and queue place is taken; the client may retry shortly."""
    return APIError(
        503,
        f"the server is busy ({reason}); retry in a second",
        code="server_busy",
        kind="server_error",
        headers={"Retry-After": "1"},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError) -> JSONResponse:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return validation_error(error.errors()).response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        message = str(error.detail)
        if error.status_code in (404, 405):
            message = f"{request.method} {request.url.path}: {message}; the API is under /v1"
        code = "request_too_large" if error.status_code == 413 else None
        status = error.status_code
        return APIError(status, message, kind=kind, code=code, headers=error.headers).response()


async def parse(request: Request, model: type[M]) -> M:
    """The body as `model`, whatever its Content-Type says (curl -d sends a form type)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        raise validation_error(error.errors()) from None


def validation_error(errors: list[dict]) -> APIError:
    """The first problem pydantic found, as one sentence naming the field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        detail = first.get("ctx", {}).get("error", "")
        return APIError(400, f"the body is not valid JSON ({detail}); send a JSON object")
    if first.get("type") == "model_type":
        return APIError(400, 'the body must be a JSON object, e.g. {"messages": [...]}')
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(location) or "body"
    message = first.get("msg", "invalid").rstrip(".")
    return APIError(400, f"{field}: {message}", param=field, code="invalid_type")
