"""One file over HTTP(S): resumed after an interruption, checked before it counts, placed atomically.

The bytes go to `<dest>.part`; a rerun asks the server for the rest (`Range: bytes=N-`) and appends, or
starts again when the server ignores the range. Only once the size and the checksum match is the part
renamed to `dest`, so a half-written file is never taken for data. A mismatch removes the part (the
next try starts clean) and says what was expected. Mirrors: `$ONECYCLE_DATA_MIRROR` serves every URL as
`<mirror>/<host>/<path>` (an institutional cache, or a loopback server in the tests).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from results.errors import UserError

MIRROR_ENV = "ONECYCLE_DATA_MIRROR"
CHUNK = 1 << 20
TIMEOUT_S = 15.0  # per socket operation: offline fails at once (DNS), a dead route in seconds


class DataError(UserError):
    """A data item could not be fetched or verified; the message names the URL and the destination."""


class Unreachable(DataError):
    """The network is down or the server refused: nothing was verified, a partial file is kept."""


@dataclass(frozen=True)
class Expected:
    """What a downloaded file must be: its size and a digest (`md5`, `sha256`, or a sha256 prefix as
    torch.hub names weights files `<name>-<first hex digits>.pth`), each optional."""

    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None

    def problem(self, path: Path) -> str | None:
        """Why `path` is not this file, or None."""
        size = path.stat().st_size
        if self.size is not None and size != self.size:
            return f"{size} bytes, expected {self.size}"
        for algorithm, want, prefix in (("md5", self.md5, False), ("sha256", self.sha256, False),
                                        ("sha256", self.sha256_prefix, True)):
            if want:
                got = file_digest(path, algorithm)
                if not (got.startswith(want.lower()) if prefix else got == want.lower()):
                    return f"{algorithm} {got}, expected {want}{'...' if prefix else ''}"
        return None


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def mirrored(url: str) -> str:
    """`url`, or its copy under $ONECYCLE_DATA_MIRROR (`<mirror>/<host>/<path>?<query>`)."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def open_url(url: str, headers: dict | None = None, private: dict | None = None):
    """urlopen with our timeout; `private` headers (a token) are not forwarded on a redirect to a CDN."""
    request = urllib.request.Request(mirrored(url), headers=headers or {})
    for key, value in (private or {}).items():
        request.add_unredirected_header(key, value)
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"cannot reach {mirrored(url)} ({reason})") from None


def nearest_existing(path: Path) -> Path:
    """`path`, or the closest of its parents that exists (where it would be created)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_free_space(directory: Path, needed: int, what: str) -> None:
    """Measured where `directory` is or would be made: checking creates nothing."""
    free = shutil.disk_usage(nearest_existing(directory)).free
    if free < needed:
        raise DataError(f"{what} needs {needed / 2**30:.2f} GiB free under {directory}, which has "
                        f"{free / 2**30:.2f} GiB; free some space or set $ONECYCLE_DATA to another disk")


def progress_bar(total: int | None, initial: int, label: str):
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                file=sys.stderr, mininterval=0.5 if tty else 30.0, dynamic_ncols=True)


def fetch_file(url: str, dest: Path, expected: Expected, label: str, private: dict | None = None) -> Path:
    """`dest`, downloaded from `url` unless it is already there and right."""
    if dest.is_file() and expected.problem(dest) is None:
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if expected.size is not None and have > expected.size:
        part.unlink()
        have = 0
    if expected.size is None or have < expected.size:
        _transfer(url, part, have, expected.size, label, private)
    problem = expected.problem(part)
    if problem:
        part.unlink()
        raise DataError(f"{label}: {mirrored(url)} gave a file of {problem}; it was removed (not placed at "
                        f"{dest}); rerun to download it again, and if it recurs the source has changed")
    with open(part, "rb") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, have: int, size: int | None, label: str, private: dict | None) -> int:
    """Append the rest of `url` to `part` from byte `have`; the bytes it then holds."""
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = open_url(url, headers, private)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing past `have`: the part is whole (the checksum decides)
            return have
        raise DataError(f"{label}: {mirrored(url)} answered HTTP {exc.code} {exc.reason}") from None
    with response:
        if have and response.status != 206:  # the server ignored the range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = size if size is not None else (have + int(length) if length else None)
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "ab" if have else "wb") as out, progress_bar(total, have, label) as bar:
            while block := _read(response, out.tell(), url, label):
                out.write(block)
                bar.update(len(block))
            if length and out.tell() < have + int(length):  # the server closed early: keep what came
                raise interrupted(url, label, out.tell(), "the connection closed early")
        return part.stat().st_size


def _read(response, received: int, url: str, label: str) -> bytes:
    """The next chunk; a connection lost mid-way keeps what came (a rerun resumes there)."""
    try:
        return response.read(CHUNK)
    except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
        raise interrupted(url, label, received, str(exc)) from None


def interrupted(url: str, label: str, received: int, why: str) -> Unreachable:
    return Unreachable(f"{label}: the download of {mirrored(url)} was interrupted after "
                       f"{received / 2**20:.1f} MiB ({why}); rerun and it resumes there")
