"""Shard names in a data YAML: brace patterns (`train-{000000..000127}.tar`), local paths or http(s) URLs, and the
shard index (`train-index.json`: sample count of every shard) that sits next to them.

The index of a pattern is found in the shards' folder, named by the text before the first `{` (or before the
trailing shard number) followed by `index.json`: `shards/train-{000000..000127}.tar` -> `shards/train-index.json`.
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from braceexpand import braceexpand

from utils.cli import UserFileNotFoundError, UserValueError

INDEX_FORMAT = "yolo-shards/1"
URL_RE = re.compile(r"^https?://", re.I)
OPEN_TIMEOUT_S = 30.0


def is_url(source: str) -> bool:
    return bool(URL_RE.match(str(source)))


def is_shard_source(source: str | Path) -> bool:
    """True for a tar shard or a brace pattern of them (local or http(s)), as a data YAML split may name."""
    s = str(source)
    return s.endswith(".tar")


def expand(pattern: str) -> list[str]:
    """The shard names a brace pattern stands for (`a-{00..02}.tar` -> a-00.tar, a-01.tar, a-02.tar)."""
    return list(braceexpand(str(pattern)))


def index_location(pattern: str) -> str:
    """Where the index of a shard pattern lives (same folder or URL prefix; see the module docstring)."""
    pattern = str(pattern)
    head, _, name = pattern.rpartition("/")
    stem = name.split("{", 1)[0] if "{" in name else re.sub(r"\d+$", "", name.removesuffix(".tar"))
    return f"{head}/{stem}index.json" if head else f"{stem}index.json"


def open_stream(source: str, timeout: float = OPEN_TIMEOUT_S) -> IO[bytes]:
    """A binary stream of a local file or an http(s) URL (OSError with the reason when it cannot be opened)."""
    if is_url(source):
        try:
            return urllib.request.urlopen(source, timeout=timeout)  # noqa: S310 (http(s) checked above)
        except urllib.error.HTTPError as e:
            raise OSError(f"HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            raise OSError(f"cannot reach server ({e.reason})") from e
    return open(source, "rb")


@dataclass
class ShardSet:
    """The shards of one split, in pattern order, with their sample counts from the index."""
    urls: list[str]
    counts: list[int]
    names: list[str]  # class names the index records (may be empty)
    index: str

    @property
    def total(self) -> int:
        return sum(self.counts)


def read_index(location: str) -> dict:
    """The parsed shard index; a UserError naming the file when it is missing or not an index."""
    try:
        with open_stream(location) as f:
            raw = json.loads(f.read().decode("utf-8"))
    except (OSError, FileNotFoundError) as e:
        raise UserFileNotFoundError(f"shard index {location} cannot be read ({e}); write the shards with "
                                    "tools/make_shards.py, which puts the index next to them") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserValueError(f"shard index {location}: not JSON ({e})") from e
    if not isinstance(raw, dict) or raw.get("format") != INDEX_FORMAT or not isinstance(raw.get("shards"), list):
        raise UserValueError(f"shard index {location}: not a {INDEX_FORMAT} index")
    return raw


def resolve_shards(patterns: list[str]) -> ShardSet:
    """Expand the patterns of a split and look up each shard's sample count in its index."""
    urls, counts, names, where = [], [], [], []
    for pattern in patterns:
        loc = index_location(pattern)
        index = read_index(loc)
        known = {str(s["name"]): int(s["samples"]) for s in index["shards"]}
        for url in expand(pattern):
            name = url.rsplit("/", 1)[-1]
            if name not in known:
                raise UserValueError(f"shard {url} is not in its index {loc} (indexed: {len(known)} shards)")
            urls.append(url)
            counts.append(known[name])
        names = names or [str(n) for n in index.get("names", [])]
        where.append(loc)
    return ShardSet(urls, counts, names, ", ".join(where))
