"""Download one published file over HTTP(S): progress bar, resume, size/sha256 check, atomic write.

``download(url, dest, sha256=..., size=...)`` writes into ``dest`` + ``.part`` and renames it over
``dest`` only once the whole file is there and passes its checks, so ``dest`` is either absent or
complete.  An interrupted transfer leaves the ``.part`` file: the next attempt (in the same call,
up to ``attempts`` times, or a later run) asks the server for the rest with an HTTP ``Range``
header.  A file of the wrong size or sha256, or one that ``check`` rejects, is deleted.

Only the standard library is used (urllib); the progress bar is tqdm's, shown on terminals.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0
ATTEMPTS = 3
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(Exception):
    """A download failed; ``offline`` is True when the server could not be reached at all."""

    def __init__(self, message: str, *, offline: bool = False):
        super().__init__(message)
        self.offline = offline


class _Interrupted(Exception):
    """The connection ended before the whole file came (the .part file is kept)."""


def part_path(dest: Path) -> Path:
    """Where an unfinished download of ``dest`` is kept."""
    return dest.with_name(dest.name + ".part")


def sha256_of(path: Path) -> str:
    return digest_of(path, "sha256")


def digest_of(path: Path, algorithm: str) -> str:
    """The hex digest of ``path``'s bytes with hashlib's ``algorithm`` (sha256, sha384, …)."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open(url: str, offset: int, timeout_s: float):
    request = urllib.request.Request(url, headers={"User-Agent": "posestream-fetch"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 (http/https only)
    except urllib.error.HTTPError as exc:
        if exc.code == 416:            # nothing after ``offset``: the .part may already be whole
            return exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot connect ({reason})", offline=True) from None


def _total_size(response, url: str, offset: int) -> tuple[int, int | None]:
    """(the byte the response starts at, the whole file's size or None if the server omits it)."""
    length = response.headers.get("Content-Length")
    if response.status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != offset:
            raise DownloadError(f"{url}: the server answered a resume request from byte {offset} "
                                f"with Content-Range {response.headers.get('Content-Range')!r}")
        total = match.group(3)
        return offset, int(total) if total != "*" else None
    return 0, int(length) if length is not None else None


def _transfer(url: str, part: Path, expected_size: int | None, label: str, timeout_s: float) -> int:
    """Fetch what ``part`` lacks; the file's full size.  _Interrupted when the connection drops."""
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()                  # longer than the published file: not a piece of it
        offset = 0
    response = _open(url, offset, timeout_s)
    with response:
        if response.status == 416:
            if offset and (expected_size is None or offset == expected_size):
                return offset          # the server has nothing more: the .part is whole
            part.unlink(missing_ok=True)
            raise _Interrupted(f"the server refused to resume at byte {offset}")
        start, total = _total_size(response, url, offset)
        if start == 0 and offset:
            log.info("%s: the server does not resume; starting again from the first byte", label)
        if expected_size is not None and total is not None and total != expected_size:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url} is {total} bytes, the published file is {expected_size}")
        total = total if total is not None else expected_size
        received = start
        part.parent.mkdir(parents=True, exist_ok=True)   # only once there is something to write
        with part.open("r+b" if start else "wb") as handle, \
                tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=label, disable=None, leave=False) as bar:
            handle.seek(start)
            handle.truncate()
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (http.client.IncompleteRead, socket.timeout, ConnectionError, OSError) as exc:
                    raise _Interrupted(f"{type(exc).__name__} after {received} bytes") from None
                if not chunk:
                    break
                handle.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
    if total is not None and received < total:
        raise _Interrupted(f"the connection closed after {received} of {total} bytes")
    return received


def download(url: str, dest: Path, *, sha256: str | None = None, size: int | None = None,
             check: Callable[[Path], None] | None = None, label: str | None = None,
             attempts: int = ATTEMPTS, timeout_s: float = TIMEOUT_S,
             sha384: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (see the module docstring); ``dest``.

    ``sha256``/``sha384``/``size``: the expected file's, each checked when given (without a size
    the size the server announces is checked).  ``check(path)`` may inspect the finished file before it is
    renamed into place and raise to reject it (the file is then deleted and the error passes on).
    DownloadError: unreachable server (``offline``), HTTP error, wrong size or sha256, or still
    incomplete after ``attempts`` tries (the ``.part`` file stays for the next run to resume).
    """
    dest = Path(dest)
    part = part_path(dest)
    label = label or dest.name
    if part.exists():
        log.info("%s: resuming the download in %s (%d bytes already there)", label, part,
                 part.stat().st_size)
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            received = _transfer(url, part, size, label, timeout_s)
            break
        except _Interrupted as reason:
            log.warning("%s: download interrupted (%s); attempt %d of %d", label, reason, attempt,
                        attempts)
    else:
        have = part.stat().st_size if part.exists() else 0
        raise DownloadError(f"{url}: download still incomplete after {attempts} attempts "
                            f"({have} bytes kept in {part}; run again to resume)")

    if size is not None and received != size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: got {received} bytes, the published file is {size}")
    for algorithm, expected in (("sha256", sha256), ("sha384", sha384)):
        if expected is not None:
            digest = digest_of(part, algorithm)
            if digest != expected.lower():
                part.unlink(missing_ok=True)
                raise DownloadError(f"{url}: {algorithm} {digest} does not match the expected "
                                    f"{expected}; nothing was saved")
    if check is not None:
        try:
            check(part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, dest)
    log.info("%s: %d bytes from %s in %.1f s, saved %s", label, received, url,
             time.monotonic() - started, dest)
    return dest
