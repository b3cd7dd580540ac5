"""Install a dataset from its declarative `download:` spec: fetch, verify, unpack, convert, rename into place.

Everything is built in `<parent>/.<name>.partial` and renamed to the dataset root only when complete, so an
interrupted run never leaves a half dataset that looks complete (the next run starts the unpacking again;
downloads resume). A file lock, `<parent>/.<name>.lock`, makes a second process wait and reuse the result.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from filelock import FileLock

from utils.cli import UserFileNotFoundError
from utils.converters import run_converter
from utils.downloads.archive import unpack
from utils.downloads.fetch import ChecksumError, DownloadError, fetch
from utils.downloads.spec import DownloadSpec, FileSpec

LOGGER = logging.getLogger("yolo")


def downloads_dir(root: Path) -> Path:
    """Where the files of the dataset at `root` are downloaded (and where to put them by hand)."""
    return root.parent / ".downloads" / root.name


def manual_instructions(spec: DownloadSpec, root: Path, yaml_file: Path, splits: list[str]) -> str:
    """What to download from where and where to put it, for a machine without network."""
    dl = downloads_dir(root)
    lines = [f"To install {root.name} by hand ({yaml_file}):",
             f"  1. download each file into {dl}{os.sep}"]
    for f in spec.files:
        check = f"sha256 {f.sha256}" if f.sha256 else "no published sha256"
        size = f"{f.size} bytes" if f.size else "size unknown"
        lines.append(f"       {f.url}\n         -> {dl / f.filename}  ({check}, {size})")
    lines += ["  2. run the same command again: the files are verified, unpacked, converted and moved into place;",
              f"or lay the dataset out yourself under {root} so that {', '.join(splits)} exist,",
              "or pass --data <folder> for a folder laid out by hand (images/train, images/val, labels/..., and a",
              "data.yaml or a classes.txt with one class name a line)."]
    if spec.note:
        lines.insert(1, f"  note: {spec.note}")
    return "\n".join(lines)


def _fetch_all(spec: DownloadSpec, root: Path, instructions: str, progress: bool) -> list[Path]:
    dl = downloads_dir(root)
    paths = []
    for f in spec.files:
        dest = dl / f.filename
        if f.manual and not dest.is_file():
            raise DownloadError(f"{f.url} cannot be downloaded automatically.\n{instructions}")
        try:
            paths.append(fetch(f.url, dest, f.sha256, f.size, progress=progress))
        except ChecksumError:
            raise
        except DownloadError as e:
            raise DownloadError(f"{e}\n{instructions}") from None
    return paths


def _unpack_one(f: FileSpec, path: Path, staging: Path) -> None:
    target = staging / f.into
    if f.archive == "none":
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / f.filename)
    else:
        LOGGER.info(f"Unpacking {path.name} into {f.into}/ ...")
        unpack(path, f.archive, target, f.strip)


def _move(staging: Path, src: str, dst: str) -> None:
    a, b = staging / src, staging / dst
    if not a.exists():
        raise UserFileNotFoundError(f"download moves: {src} was not in the unpacked files (staging folder {staging})")
    b.parent.mkdir(parents=True, exist_ok=True)
    os.replace(a, b)


def _merge(src: Path, dst: Path) -> None:
    """Move the tree `src` into the existing folder `dst` (files replaced, folders merged)."""
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and target.is_dir() and not target.is_symlink():
            _merge(entry, target)
        else:
            os.replace(entry, target)
    src.rmdir()


def _place(staging: Path, root: Path, split_paths: list[Path]) -> None:
    """Rename the finished staging folder to `root`; into an existing root, the entries holding a split last."""
    if not root.exists():
        os.replace(staging, root)
        return
    tops = {p.relative_to(root).parts[0] for p in split_paths if p.is_relative_to(root) and p != root}
    for entry in sorted(staging.iterdir(), key=lambda e: (e.name in tops, e.name)):
        target = root / entry.name
        if entry.is_dir() and target.is_dir():
            _merge(entry, target)
        else:
            os.replace(entry, target)
    staging.rmdir()


def _build(spec: DownloadSpec, archives: list[Path], staging: Path, names: list[str]) -> None:
    """Unpack, move and convert in the staging folder."""
    for f, path in zip(spec.files, archives):
        _unpack_one(f, path, staging)
    for src, dst in spec.moves:
        _move(staging, src, dst)
    if spec.convert:
        LOGGER.info(f"Converting labels ({spec.convert}) ...")
        run_converter(spec.convert, staging, names, spec.convert_args)


def install(spec: DownloadSpec, root: Path, names: list[str], split_paths: list[Path], yaml_file: Path,
            progress: bool = True) -> None:
    """Download and install the dataset at `root` unless `split_paths` all exist (checked again under the lock)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent / f".{root.name}.lock")):
        if all(p.exists() for p in split_paths):
            LOGGER.info(f"{root.name}: found complete at {root} (installed by another process)")
            return
        def shown(p: Path) -> str:
            return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)

        rel = list(dict.fromkeys(map(shown, split_paths)))
        missing = list(dict.fromkeys(shown(p) for p in split_paths if not p.exists()))
        instructions = manual_instructions(spec, root, yaml_file, rel)
        LOGGER.info(f"Dataset not found at {root} (missing: {', '.join(missing)}); "
                    f"downloading {len(spec.files)} file(s)")
        archives = _fetch_all(spec, root, instructions, progress)
        staging = root.parent / f".{root.name}.partial"
        if staging.exists():
            shutil.rmtree(staging)  # left by a run killed mid-unpack: start the unpacking again
        staging.mkdir()
        try:
            _build(spec, archives, staging, names)
            _place(staging, root, split_paths)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # never a half dataset; the downloads are kept
            raise
        for path in archives:
            path.unlink(missing_ok=True)
        LOGGER.info(f"{root.name}: installed at {root}")
