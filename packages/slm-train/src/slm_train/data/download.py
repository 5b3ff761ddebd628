"""Download files over HTTP(S) so that an interrupted download costs nothing.

Corpora and pretrained weights are large, and connections drop. Two rules make
that harmless:

* The bytes go to ``<destination>.part`` first and are renamed to the
  destination (atomically, with :func:`os.replace`) only once the whole body has
  arrived and, when a checksum is given, matches it. A file at the destination
  is therefore always complete, so "the file exists" is a safe cache test.
* A ``.part`` file left by an earlier attempt is kept and resumed with an HTTP
  ``Range`` request, so running the same command again continues where the
  last attempt stopped instead of starting over.

Every failure is reported as a :class:`DownloadError` whose message is one line
naming what went wrong and what to do about it, because the person reading it
is running a command, not debugging this module.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from rich.console import Console
from rich.filesize import decimal as _size
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["DownloadError", "download"]

_RETRY = "run the same command again to resume"


class DownloadError(RuntimeError):
    """A download failed; the message is one line naming the problem and the fix."""


def download(
    url: str,
    destination: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    chunk_size: int = 1 << 20,
) -> Path:
    """Make sure ``destination`` holds the file at ``url`` and return its path.

    An existing destination is trusted (it can only have been written whole)
    and returned without touching the network, unless ``sha256`` is given and
    does not match. Otherwise the body is fetched into ``<destination>.part``,
    resuming a ``.part`` left by an interrupted attempt, checked against
    ``sha256`` and only then moved into place.

    ``timeout`` bounds the wait for each network operation, not the whole
    download, so a slow but steady connection is never cut off. Raises
    :class:`DownloadError` on any failure; the ``.part`` file is kept unless it
    is known to be corrupt, so calling again resumes.
    """
    destination = Path(destination)
    expected = sha256.lower() if sha256 is not None else None
    if destination.is_file() and (expected is None or _sha256_of(destination) == expected):
        return destination

    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(
            f"cannot download {url!r}: only http:// and https:// URLs are supported"
        )

    part = destination.with_name(destination.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    _fetch(url, part, progress=progress, timeout=timeout, chunk_size=chunk_size)

    if expected is not None:
        actual = _sha256_of(part)
        if actual != expected:
            # A finished body with the wrong hash cannot be repaired by resuming.
            part.unlink()
            raise DownloadError(
                f"download of {url} was corrupted (sha256 {actual[:12]}..., expected "
                f"{expected[:12]}...); the partial file was deleted, run the same command again"
            )
    os.replace(part, destination)
    return destination


def _fetch(url: str, part: Path, *, progress: bool, timeout: float, chunk_size: int) -> None:
    """Bring ``part`` to the full body of ``url``, resuming from its current size."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response: HTTPResponse = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as error:
        if error.code == 416 and offset:
            # Nothing left past our offset: either the .part is already whole,
            # or it is longer than the file (the file changed); start over then.
            if _content_range(error.headers.get("Content-Range"))[2] == offset:
                return
            part.unlink()
            _fetch(url, part, progress=progress, timeout=timeout, chunk_size=chunk_size)
            return
        raise DownloadError(_http_error_message(url, error)) from None
    except (OSError, HTTPException) as error:  # URLError, refused, DNS, timeout, ...
        host = urllib.parse.urlsplit(url).netloc
        raise DownloadError(
            f"download of {url} failed: could not reach {host} ({_reason(error)}); "
            "check the URL and your network connection, then run the same command again"
        ) from None

    with response:
        start, total = 0, None
        if response.status == 206:
            start, _, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise DownloadError(
                    f"download of {url} failed: the server resumed at byte {start} instead of "
                    f"{offset}; the partial file was deleted, run the same command again"
                )
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit():
            total = start + int(length)

        received = start
        console = Console(stderr=True)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        # "ab" keeps the bytes we already have; "wb" starts over when the
        # server ignored the Range header and is sending the whole file.
        mode = "ab" if start else "wb"
        with Progress(*columns, console=console, disable=not progress) as bar:
            task = bar.add_task(part.name.removesuffix(".part"), total=total, completed=start)
            try:
                with part.open(mode) as file:
                    while chunk := response.read(chunk_size):
                        file.write(chunk)
                        received += len(chunk)
                        bar.update(task, completed=received)
            except (OSError, HTTPException) as error:
                raise DownloadError(_interrupted(url, received, total, _reason(error))) from None

    if total is not None and received < total:
        raise DownloadError(_interrupted(url, received, total, "connection closed early"))


def _content_range(header: str | None) -> tuple[int, int | None, int | None]:
    """Parse ``bytes START-END/TOTAL`` or ``bytes */TOTAL``; unknown parts are None."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", header or "")
    if match is None:
        return 0, None, None
    start, end, total = match.groups()
    return (
        int(start) if start else 0,
        int(end) if end else None,
        int(total) if total and total != "*" else None,
    )


def _http_error_message(url: str, error: HTTPError) -> str:
    """Say what an HTTP error status means for the person running the command."""
    status = f"HTTP {error.code} {error.reason}".strip()
    if error.code == 404:
        return f"download of {url} failed: not found ({status}); check the URL"
    if error.code in (401, 403):
        return f"download of {url} failed: access denied ({status}); check the URL and your access"
    if error.code >= 500:
        return f"download of {url} failed: server error ({status}); wait a moment, then {_RETRY}"
    return f"download of {url} failed: the server refused the request ({status}); check the URL"


def _interrupted(url: str, received: int, total: int | None, reason: str) -> str:
    """One line saying how far the download got, so the user knows resuming is worth it."""
    of = f" of {_size(total)}" if total is not None else ""
    return f"download of {url} interrupted after {_size(received)}{of} ({reason}); {_RETRY}"


def _reason(error: BaseException) -> str:
    """A short, single-line cause for a network exception."""
    if isinstance(error, URLError) and isinstance(error.reason, BaseException):
        error = error.reason
    if isinstance(error, TimeoutError):
        return "timed out waiting for the server"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, HTTPException):
        return "connection closed early"
    if isinstance(error, URLError):
        text = str(error.reason)
    elif isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _sha256_of(path: Path) -> str:
    """Hash a file in chunks so multi-gigabyte files do not need to fit in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
