"""Verified label cache: scan every image/label pair once, store the result as JSON next to the labels.

The cache holds a version and a hash of all file paths and sizes; a stale, foreign or unreadable
cache is rebuilt. It is written atomically (temp file + rename); a read-only folder only costs a
warning. JSON, not pickle: loading a cache can never execute code.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from utils.data.image_check import verify_image
from utils.data.label_check import verify_label

LOGGER = logging.getLogger("yolo.data")
CACHE_VERSION = 2  # 2: rows that are not boxes dropped per row (1 skipped the whole image)


@dataclass
class ScanResult:
    """Verified dataset: kept images with labels and shapes, counts and messages."""
    im_files: list[str]
    label_files: list[str]
    labels: list[np.ndarray]
    shapes: list[tuple[int, int]]  # (w, h) after EXIF
    counts: dict[str, int] = field(default_factory=dict)  # found, missing, empty, corrupt
    msgs: list[str] = field(default_factory=list)
    rows_dropped: int = 0  # label rows that were not boxes (zero/negative size, duplicates), in kept images

    def summary(self) -> str:
        """One line: label files found/missing/empty/corrupt, then images kept, rows dropped, files skipped."""
        c = self.counts
        return (f"{c['found']} labels found, {c['missing']} missing, {c['empty']} empty, {c['corrupt']} corrupt "
                f"({c['missing'] + c['empty']} background images, {len(self.im_files)} images kept); "
                f"{self.rows_dropped} label rows dropped, {c['corrupt']} files skipped")


def files_hash(paths: list[str]) -> str:
    """sha256 over the paths and their sizes (missing files count as size -1)."""
    h = hashlib.sha256()
    for p in paths:
        size = os.path.getsize(p) if os.path.exists(p) else -1
        h.update(f"{p}\0{size}\n".encode())
    return h.hexdigest()


def _check_pair(im_file: str, lb_file: str, nc: int | None) -> dict:
    try:
        shape, im_msg = verify_image(im_file)
        lb, status, lb_msg, dropped = verify_label(lb_file, nc)
    except Exception as e:  # every failure becomes a report, never an exception
        where = lb_file if "row" in str(e) or "text file" in str(e) else im_file
        return {"status": "corrupt", "msg": f"{where}: skipped, {e}"}
    msgs = [f"{im_file}: {im_msg}" if im_msg else "", f"{lb_file}: {lb_msg}" if lb_msg else ""]
    return {"status": status, "shape": list(shape), "labels": lb.tolist(), "dropped": dropped,
            "msg": "; ".join(m for m in msgs if m)}


def scan(im_files: list[str], label_files: list[str], nc: int | None, prefix: str = "",
         workers: int = 4) -> dict:
    """Verify every pair (threaded, with a progress bar); returns the cache dictionary."""
    entries = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        it = pool.map(_check_pair, im_files, label_files, [nc] * len(im_files))
        for im, lb, r in tqdm(zip(im_files, label_files, it), total=len(im_files), desc=f"{prefix}Scanning labels",
                              leave=False):
            entries.append({"im_file": im, "label_file": lb, **r})
    return {"version": CACHE_VERSION, "hash": files_hash(label_files + im_files), "nc": nc, "entries": entries}


def _read_cache(path: Path, expected_hash: str, nc: int | None) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            cache = json.load(f)
        if cache.get("version") == CACHE_VERSION and cache.get("hash") == expected_hash and cache.get("nc") == nc:
            return cache
        LOGGER.info(f"{path}: cache is stale, rebuilding")
    except FileNotFoundError:
        pass
    except Exception as e:
        LOGGER.warning(f"WARNING {path}: unreadable cache ({type(e).__name__}), rebuilding")
    return None


def is_writeable(folder: str | Path) -> bool:
    """True when `folder` may be written: os.access and, even for root, at least one write bit set."""
    try:
        return os.access(folder, os.W_OK) and bool(os.stat(folder).st_mode & 0o222)
    except OSError:
        return False


def write_cache(path: Path, cache: dict) -> bool:
    """Write atomically; on a read-only folder warn and return False."""
    if not is_writeable(path.parent):
        LOGGER.warning(f"WARNING cache not saved, {path.parent} is read-only")
        return False
    try:
        fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(cache, f)
        os.replace(tmp, path)
        return True
    except OSError as e:
        LOGGER.warning(f"WARNING cache not saved, {path.parent} is not writeable ({e.strerror})")
        return False


def cache_path_for(label_files: list[str]) -> Path:
    """`labels/train2017/x.txt` -> `labels/train2017.cache` (YOLOv5's location)."""
    return Path(label_files[0]).parent.with_suffix(".cache")


def load_verified(im_files: list[str], label_files: list[str], nc: int | None = None, prefix: str = "",
                  cache_path: Path | None = None) -> ScanResult:
    """Cached scan of the dataset; logs every problem with its path and a one-line summary."""
    cache_path = cache_path or cache_path_for(label_files)
    cache = _read_cache(cache_path, files_hash(label_files + im_files), nc)
    if cache is None:
        cache = scan(im_files, label_files, nc, prefix)
        write_cache(cache_path, cache)
    return _to_result(cache, prefix)


def _to_result(cache: dict, prefix: str) -> ScanResult:
    res = ScanResult([], [], [], [], counts={"found": 0, "missing": 0, "empty": 0, "corrupt": 0})
    for e in cache["entries"]:
        res.counts[e["status"]] += 1
        if e["msg"]:
            res.msgs.append(e["msg"])
        if e["status"] == "corrupt":
            continue
        res.rows_dropped += e["dropped"]
        res.im_files.append(e["im_file"])
        res.label_files.append(e["label_file"])
        res.labels.append(np.array(e["labels"], dtype=np.float32).reshape(-1, 5))
        res.shapes.append(tuple(e["shape"]))
    for m in res.msgs:
        LOGGER.warning(f"{prefix}WARNING {m}")
    LOGGER.info(f"{prefix}{res.summary()}")
    return res
