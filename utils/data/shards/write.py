"""Write a YOLO image folder as WebDataset tar shards: `<key>.<ext>` (the original image bytes) + `<key>.txt`
(the labels after the same checks as training: utils/label_cache.load_verified) per sample, and a shard index
`<prefix>index.json` with every shard's sample count (read by utils/data/shards/spec.py)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import webdataset as wds
from tqdm import tqdm

from utils.cli import UserValueError
from utils.data.files import img2label_paths, list_image_files
from utils.data.label_cache import load_verified
from utils.data.shards.spec import INDEX_FORMAT

SHARD_DIGITS = 6
FIXED_MTIME = 0.0  # shards written twice from the same data are byte-identical


@dataclass
class ShardWriteResult:
    """What `write_shards` wrote."""
    index: Path
    pattern: str  # brace pattern of the shards, relative to their folder
    shards: list[Path]
    samples: int
    skipped: int  # images the label/image checks refused (reported by load_verified)


def label_text(labels: np.ndarray) -> str:
    """`class cx cy w h` rows; float32 values written with the shortest text that reads back to the same float32."""
    fmt = lambda v: np.format_float_positional(np.float32(v), unique=True, trim="-")  # noqa: E731
    return "".join(f"{int(r[0])} " + " ".join(fmt(v) for v in r[1:]) + "\n" for r in labels)


def sample_key(n: int, im_file: str) -> str:
    """A tar key without dots (WebDataset splits name and extension at the first dot): number + file stem."""
    return f"{n:08d}_" + re.sub(r"[^A-Za-z0-9_-]", "_", Path(im_file).stem)


def _write_one(path: Path, samples: list[dict]) -> tuple[int, str]:
    """One shard, atomically (temporary file, then rename); returns (bytes, sha256)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            with wds.TarWriter(f, mtime=FIXED_MTIME) as tw:
                for s in samples:
                    tw.write(s)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def _atomic_json(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_shards(source, out_dir: str | Path, prefix: str = "train-", shard_size: int = 1000,
                 names: list[str] | None = None, nc: int | None = None) -> ShardWriteResult:
    """Shards of `source` (a folder, .txt list or list, as a data YAML split) in `out_dir`, `shard_size` samples
    each (the last may be shorter); images the checks refuse are left out and counted in `skipped`."""
    if shard_size < 1:
        raise UserValueError(f"shard size must be >= 1, got {shard_size}")
    if prefix and prefix[-1].isdigit():
        raise UserValueError(f"shard prefix {prefix!r} must not end in a digit (the shard number follows it)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    im_files = list_image_files(source)
    res = load_verified(im_files, img2label_paths(im_files), nc, prefix=f"{prefix} ")
    n_shards = -(-len(res.im_files) // shard_size)
    if not n_shards:
        raise UserValueError(f"{source}: no usable images to write ({res.summary()})")
    entries, paths = [], []
    bar = tqdm(range(n_shards), desc=f"writing {n_shards} shards to {out}", unit="shard")
    for i in bar:
        lo, hi = i * shard_size, min((i + 1) * shard_size, len(res.im_files))
        samples = []
        for n in range(lo, hi):
            f = res.im_files[n]
            ext = Path(f).suffix[1:].lower().replace("jpeg", "jpg")
            samples.append({"__key__": sample_key(n, f), ext: Path(f).read_bytes(), "txt": label_text(res.labels[n])})
        path = out / f"{prefix}{i:0{SHARD_DIGITS}d}.tar"
        size, digest = _write_one(path, samples)
        entries.append({"name": path.name, "samples": hi - lo, "bytes": size, "sha256": digest})
        paths.append(path)
    pattern = f"{prefix}{{{0:0{SHARD_DIGITS}d}..{n_shards - 1:0{SHARD_DIGITS}d}}}.tar"
    index = out / f"{prefix}index.json"
    skipped = res.counts.get("corrupt", 0)
    _atomic_json(index, {"format": INDEX_FORMAT, "pattern": pattern, "samples": len(res.im_files),
                         "skipped": skipped, "names": list(names or []), "nc": nc, "shards": entries})
    return ShardWriteResult(index, pattern, paths, len(res.im_files), skipped)
