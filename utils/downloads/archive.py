"""Unpack zip / tar / tar.gz archives safely: every member is checked before anything is written.

Refused (the whole archive, nothing written): absolute names, '..' components, drive letters, links whose
target leaves the destination, members written through a link of the archive, hard links, devices and
fifos. `strip` drops leading path components, as `tar --strip-components` ("auto": the one top folder all
members share, if any); members with no components left are skipped.
"""
from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from utils.cli import UserValueError


class UnsafeArchiveError(UserValueError):
    """An archive with a member that would land outside its target folder."""


def _member_path(name: str, strip: int, archive: Path) -> PurePosixPath | None:
    """The member's path relative to the destination after `strip`, or None when nothing is left."""
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in p.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would be written outside the target folder")
    parts = [x for x in p.parts if x not in ("", ".")][strip:]
    return PurePosixPath(*parts) if parts else None


def _link_target_ok(rel: PurePosixPath, target: str) -> bool:
    """A symlink at `rel` pointing at `target` stays inside the destination."""
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        return False
    depth = len(rel.parts) - 1
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return False
    return True


def _zip_plan(zf: zipfile.ZipFile, strip: int, archive: Path) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    plan = []
    for info in zf.infolist():
        rel = _member_path(info.filename, strip, archive)
        if rel is None:
            continue
        if (info.external_attr >> 16) & 0o170000 == 0o120000:  # a symlink stored by Info-ZIP
            target = zf.read(info).decode("utf-8", "replace")
            if not _link_target_ok(rel, target):
                raise UnsafeArchiveError(f"{archive}: symlink {info.filename!r} -> {target!r} leaves the target")
        plan.append((info, rel))
    return plan


def _tar_plan(tf: tarfile.TarFile, strip: int, archive: Path) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    plan, links = [], set()
    for m in tf.getmembers():
        rel = _member_path(m.name, strip, archive)
        if rel is None:
            continue
        if any(PurePosixPath(*rel.parts[:i]) in links for i in range(1, len(rel.parts) + 1)):
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is written through a symlink of the archive")
        if m.issym() and not _link_target_ok(rel, m.linkname):
            raise UnsafeArchiveError(f"{archive}: symlink {m.name!r} -> {m.linkname!r} leaves the target")
        if m.islnk() or m.isdev() or m.isfifo():
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a hard link or special file (refused)")
        if m.issym():
            links.add(rel)
        plan.append((m, rel))
    return plan


def _auto_strip(names: list[str]) -> int:
    """1 when every member is one shared top folder or lies below it, else 0."""
    parts = [[x for x in PurePosixPath(n.replace("\\", "/")).parts if x not in ("", ".")] for n in names]
    parts = [p for p in parts if p]
    tops = {p[0] for p in parts}
    return 1 if len(tops) == 1 and any(len(p) > 1 for p in parts) else 0


def unpack(archive: Path, kind: str, dest: Path, strip: int | str = 0) -> list[Path]:
    """Unpack `archive` (zip, tar or tar.gz) into `dest`; returns the files written."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            strip = _auto_strip(zf.namelist()) if strip == "auto" else strip
            for info, rel in _zip_plan(zf, strip, archive):
                out = dest / rel
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:  # symlinks land as small files, never links
                    shutil.copyfileobj(src, dst, 1 << 20)
                written.append(out)
    elif kind in ("tar", "tar.gz"):
        with tarfile.open(archive, "r:gz" if kind == "tar.gz" else "r:") as tf:
            strip = _auto_strip(tf.getnames()) if strip == "auto" else strip
            for m, rel in _tar_plan(tf, strip, archive):
                out = dest / rel
                if m.isdir():
                    out.mkdir(parents=True, exist_ok=True)
                elif m.issym():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.symlink_to(m.linkname)
                else:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with tf.extractfile(m) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    written.append(out)
    else:
        raise ValueError(f"{archive}: unknown archive type {kind!r} (zip, tar, tar.gz)")
    return written
