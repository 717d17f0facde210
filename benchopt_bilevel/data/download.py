"""Download one file: mirrors in order, retries, optional progress bar, atomic write, checksums.

The bytes go to a temporary file next to the destination and are moved into place with
`os.replace` only once complete and verified, so the cache never holds a partial or corrupt
file and a file the user already had is never removed.
"""
from __future__ import annotations

import contextlib
import http.client
import logging
import os
import sys
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .checksum import CHUNK, check_digests
from .errors import DataError
from .remote import RemoteFile

log = logging.getLogger(__name__)

USER_AGENT = "benchopt-bilevel-data/0.1 (+urllib)"
# Answers that will not change if asked again: go straight to the next mirror.
PERMANENT_HTTP = {400, 401, 403, 404, 405, 410, 451}


class _Truncated(OSError):
    """The server closed the connection before sending all announced bytes."""


def want_progress(progress: bool | None) -> bool:
    """Show a bar when asked, or by default only when stderr is an interactive terminal."""
    if progress is not None:
        return progress
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


@contextlib.contextmanager
def progress_bar(label: str, total: int | None, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n_bytes)` callback, drawing a rich bar on stderr when enabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def fetch_to_temp(url: str, folder: Path, name: str, *, timeout: float,
                  progress: bool) -> Path:
    """Stream `url` into a new temporary file in `folder`; return its path.

    Raises urllib/http/OS errors as they come; the temporary file is removed on any failure.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
            announced = resp.headers.get("Content-Length")
            total = int(announced) if announced and announced.isdigit() else None
            received = 0
            with progress_bar(name, total, progress) as advance:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    advance(len(chunk))
            if total is not None and received != total:
                raise _Truncated(f"got {received} of {total} bytes")
        return tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _is_permanent(exc: BaseException) -> bool:
    """Not worth a retry: a permanent HTTP status, or a host name that does not resolve (no
    network, or a wrong address: retrying within seconds changes neither)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in PERMANENT_HTTP
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, socket.gaierror)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection dropped after {len(exc.partial)} bytes"
    if isinstance(exc, urllib.error.URLError):
        return _one_line(exc.reason)
    return _one_line(exc) or type(exc).__name__


def download(file: RemoteFile, dest: Path, *, urls: Sequence[str] | None = None,
             retries: int = 2, timeout: float = 60.0, backoff: float = 1.0,
             progress: bool | None = None) -> str:
    """Download `file` to `dest` trying each mirror in order; return the verified sha256.

    Transient failures (timeouts, dropped connections, 5xx) are retried `retries` times per
    mirror with exponential `backoff` seconds; permanent answers (404, 403, ...) and checksum
    mismatches move on to the next mirror. Raises DataError when every mirror failed: the
    checksum error if one was seen (it names the file and both digests), else a summary.
    """
    urls = list(file.urls if urls is None else urls)
    if not urls:
        raise DataError(f"{file.name} has no download address; place it at {dest}")
    folder = dest.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create cache folder {folder} ({_describe(exc)}); "
                        "set BENCHOPT_BILEVEL_DATA to a writable folder") from exc
    show = want_progress(progress)
    failures: list[str] = []
    mismatch: DataError | None = None
    for url in urls:
        for attempt in range(retries + 1):
            try:
                tmp = fetch_to_temp(url, folder, file.name, timeout=timeout, progress=show)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # ValueError: malformed URL; OSError covers URLError, timeouts, resets.
                log.info("download of %s from %s failed (%s)", file.name, url, _describe(exc))
                if _is_permanent(exc) or isinstance(exc, ValueError) or attempt == retries:
                    tries = f" ({attempt + 1} tries)" if attempt else ""
                    failures.append(f"{url}: {_describe(exc)}{tries}")  # one entry per mirror
                    break
                time.sleep(backoff * 2 ** attempt)
                continue
            try:
                sha256 = check_digests(file, tmp, origin=url)
            except DataError as exc:
                tmp.unlink(missing_ok=True)  # the bad download only; nothing the user had
                mismatch = exc
                failures.append(f"{url}: {_one_line(exc)}")
                break
            os.replace(tmp, dest)
            if not file.has_checksum:
                log.info("%s has no published checksum; sha256 of the download: %s", file.name, sha256)
            return sha256
    if mismatch is not None:
        raise DataError(f"{mismatch}; the download was discarded, nothing in {folder} was changed")
    raise DataError(f"could not download {file.name} ({'; '.join(failures)}); check the network, "
                    f"or download it yourself and place it at {dest}")
