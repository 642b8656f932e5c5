"""What an error tells the user: JSON ``{"detail": ...}`` without server paths, Python exception
names or the request's own content.

* :class:`~liverseg.errors.LiversegError` -> 422 (413 for an oversized upload) with
  :func:`public_message`: the message without the folder part of any absolute path, exception
  class names or ``[Errno N]`` prefixes.
* Invalid requests (FastAPI validation) -> 422 listing where and what is wrong, never the input
  itself (a 400 MB login body must not be echoed back).
* An integer the database cannot hold (an id of 2**64) -> 422 instead of a crash.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from liverseg.errors import LiversegError
from liverseg.service.storage import UploadTooLargeError

__all__ = ["install_error_handlers", "public_message"]

log = logging.getLogger(__name__)

# an absolute path: "/" after a start, space, quote or bracket, followed by path characters
_ABS_PATH = re.compile(r"""(?<![\w.~-])/(?:[^\s'"(),:;/]+/)*([^\s'"(),:;/]*)""")
_EXC_NAME = re.compile(r"\b(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Warning): ?")
_ERRNO = re.compile(r"\[Errno \d+\] ")


def public_message(text: str) -> str:
    """``text`` made safe to show a user: paths reduced to their file name, no exception names."""
    text = _ABS_PATH.sub(lambda m: m.group(1) or "<path>", text)
    text = _EXC_NAME.sub("", text)
    return _ERRNO.sub("", text)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers described in the module docstring on ``app``."""

    @app.exception_handler(UploadTooLargeError)
    async def _too_large(_request: Request, exc: UploadTooLargeError) -> JSONResponse:
        return JSONResponse({"detail": public_message(str(exc))}, status_code=413)

    @app.exception_handler(LiversegError)
    async def _user_error(_request: Request, exc: LiversegError) -> JSONResponse:
        return JSONResponse({"detail": public_message(str(exc))}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "invalid")),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(OverflowError)
    async def _overflow(_request: Request, _exc: OverflowError) -> JSONResponse:
        return JSONResponse({"detail": "a number in the request is out of range"}, status_code=422)

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, exc: DataError) -> JSONResponse:
        log.info("database refused a value: %s", exc.orig)
        return JSONResponse({"detail": "a value in the request is out of range or invalid"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(
            "/api/"
        )
        if exc.status_code == 401 and wants_html:
            return RedirectResponse("/login", status_code=303)
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )
