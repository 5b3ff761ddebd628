"""The FastAPI application: the OpenAI routes, OpenAI-shaped errors, the key and size guard.

`create_app(served, config)` is all a caller needs (the command line, the
tests, a notebook): `served` is a loaded run with its worker (model_host.py),
and `app.state.served` gives every route, including ones added later, the
same one. There are no API docs pages, since FastAPI's load their scripts
from a CDN.
"""

from __future__ import annotations

from importlib.metadata import version

from fastapi import FastAPI

from . import playground, routes
from .config import ServeConfig
from .errors import install_error_handlers
from .guard import Guard
from .model_host import Served


def create_app(served: Served, config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    app = FastAPI(
        title="slm-serve",
        version=version("slm-serve"),
        docs_url=None,
        redoc_url=None,
    )
    app.state.served = served
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(playground.router)  # the page at / and its look-inside routes
    app.add_middleware(Guard, api_key=config.api_key, max_body=config.max_body)
    return app
