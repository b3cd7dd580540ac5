"""Fetch one URL to a file: resumable (HTTP Range), retried with backoff, checked by size and sha256.

The bytes land in `<dest>.part`; only a file whose size and checksum match is renamed to `dest`, so `dest`
existing means a verified download. A `.part` left by an interrupted run is resumed, not restarted.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from utils.cli import UserError

LOGGER = logging.getLogger("yolo")
CHUNK = 1 << 20
_RETRY_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError)


class DownloadError(UserError, RuntimeError):
    """A URL that could not be fetched after all retries (the message says what to do by hand)."""


class ChecksumError(DownloadError):
    """A fetched file whose size or sha256 is not the published one (the file is deleted)."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, sha256: str | None, size: int | None, url: str, delete: bool = True) -> None:
    """Raise ChecksumError (deleting `path` if `delete`) unless its size and sha256 are the expected ones."""
    def refuse(what: str) -> None:
        if delete:
            path.unlink()
        raise ChecksumError(f"{url}: {what}; " + (f"deleted {path}" if delete else f"replace or remove {path}"))

    actual = path.stat().st_size
    if size is not None and actual != size:
        refuse(f"got {actual} bytes, expected {size}")
    if sha256 is None:
        checked = "its size only" if size is not None else "the server's Content-Length only"
        LOGGER.warning(f"WARNING: {url}: no published sha256; {actual} bytes, checked against {checked}")
        return
    digest = sha256_of(path)
    if digest != sha256:
        refuse(f"sha256 {digest} does not match the expected {sha256}")


def _total(resp, offset: int) -> int | None:
    """Full file size from Content-Range (a 206) or Content-Length (a 200)."""
    rng = resp.headers.get("Content-Range", "")
    if resp.status == 206 and "/" in rng and not rng.endswith("/*"):
        return int(rng.rsplit("/", 1)[1])
    length = resp.headers.get("Content-Length")
    return int(length) + (offset if resp.status == 206 else 0) if length else None


def _range_start(resp) -> int:
    rng = resp.headers.get("Content-Range", "")  # "bytes 100-199/200"
    try:
        return int(rng.split()[1].split("-")[0])
    except (IndexError, ValueError):
        raise http.client.HTTPException(f"bad Content-Range {rng!r}") from None


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> int | None:
    """One attempt: append to `part` from its current size; returns the full size the server announced."""
    offset = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "yolo-downloads", "Accept-Encoding": "identity"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https only, checked by the spec)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the part is complete (verified by the caller)
            return offset
        raise
    with resp:
        if offset and resp.status != 206:  # server ignores Range: start again
            offset = 0
        elif offset and _range_start(resp) != offset:
            raise http.client.HTTPException(f"asked for bytes {offset}-, got {resp.headers.get('Content-Range')}")
        total = _total(resp, offset)
        with open(part, "ab" if offset else "wb") as f, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name[:-5], disable=not progress, leave=False) as bar:
            while block := resp.read(CHUNK):
                f.write(block)
                bar.update(len(block))
    got = part.stat().st_size
    if total is not None and got < total:
        raise http.client.IncompleteRead(b"", total - got)
    return total


def fetch(url: str, dest: Path, sha256: str | None = None, size: int | None = None, retries: int = 3,
          backoff: float = 1.0, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download `url` to `dest` (resuming `dest.part`), verify it, return `dest`. A `dest` already there (an
    earlier run's, or put there by hand) is verified and reused, never deleted."""
    dest = Path(dest)
    if dest.is_file():
        verify(dest, sha256, size, url, delete=False)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            total = _fetch_once(url, part, timeout, progress)
            if total is not None and size is not None and total != size:
                LOGGER.warning(f"WARNING: {url}: server announces {total} bytes, the YAML says {size}")
            break
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
            last = e
        except _RETRY_ERRORS as e:
            last = e
        if attempt < retries:
            wait = backoff * 2 ** attempt
            LOGGER.warning(f"WARNING: {url}: {last!r}; retry {attempt + 1}/{retries} in {wait:g}s (resuming)")
            time.sleep(wait)
    else:
        kept = f"; {part} is kept for resuming" if part.exists() else ""
        raise DownloadError(f"{url}: failed after {retries + 1} attempts ({last!r}){kept}")
    verify(part, sha256, size, url)
    os.replace(part, dest)
    return dest
