"""What every request passes before a route sees it: the API key, and the body's size limit.

Plain ASGI middleware (not Starlette's BaseHTTPMiddleware), so streamed
responses pass through untouched and a client's disconnect still reaches the
route. The body is counted as it arrives: a client that lies about its
Content-Length, or sends none, is stopped at the limit all the same.

There is no CORS middleware: a web page from another origin cannot call the
server from a visitor's browser (the playground at / is same-origin).

The playground's own files (GET / and /static/...) need no key, as llama.cpp's
server serves its page: a browser cannot send a header when it opens a page,
and the files hold nothing but the page. The page asks for the key and sends
it with every API call, and every API route needs it.
"""

from __future__ import annotations

import hmac

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import APIError


class Guard:
    def __init__(self, app: ASGIApp, api_key: str | None, max_body: int) -> None:
        self.app, self.api_key, self.max_body = app, api_key, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        page = scope["method"] == "GET" and (scope["path"] == "/" or _is_static(scope["path"]))
        refusal = None if page else self.refusal(dict(scope["headers"]))
        if refusal is not None:
            return await refusal.response()(scope, receive, send)
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:  # FastAPI passes an HTTPException on to its handler
                raise HTTPException(413, self.too_large().message)
            return message

        await self.app(scope, counted, send)

    def refusal(self, headers: dict[bytes, bytes]) -> APIError | None:
        if self.api_key is not None:
            given = headers.get(b"authorization", b"").decode("latin-1")
            expected = f"Bearer {self.api_key}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return APIError(
                    401,
                    "this server needs an API key: send 'Authorization: Bearer KEY' "
                    "(the key given to --api-key)",
                    code="invalid_api_key",
                    kind="authentication_error",
                )
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body:
            return self.too_large()
        return None

    def too_large(self) -> APIError:
        return APIError(
            413,
            f"the request body is over the server's limit of {self.max_body:,} bytes "
            "(--max-body); send a shorter prompt",
            code="request_too_large",
        )


def _is_static(path: str) -> bool:
    return path.startswith("/static/") and ".." not in path
