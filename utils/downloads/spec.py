"""The declarative `download:` section of a data YAML, parsed and checked (never executed).

    download:
      files:                      # fetched in order, each verified, then unpacked into the dataset root
        - url: https://host/set.zip
          sha256: 9f86d0...       # or null where no checksum is published (size checked, warning)
          size: 7002341           # bytes, or null
          archive: zip            # zip | tar | tar.gz | none (a plain file, moved into place)
          into: images            # folder under the dataset root the archive unpacks into ('.' = the root)
          strip: auto             # leading path components dropped from member names (as tar --strip-components);
                                  # auto: drop the one top folder all members share (as YOLOv5, which unpacks
                                  # such archives beside the root), none when they share none
          manual: false           # true: never fetched, the user puts the file in the downloads folder by hand
      moves:                      # optional renames inside the dataset root, after unpacking
        - {from: Argoverse-1.1/tracking, to: Argoverse-1.1/images}
      convert:                    # optional: one converter from utils/converters, with its parameters
        name: voc
        args: {devkit: images/VOCdevkit}
      note: text shown with the manual-download instructions

A plain URL string (`download: https://host/set.zip`, YOLOv5's short form) means one archive unpacked into the
root with `strip: auto`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from utils.cli import UserValueError

ARCHIVES = ("zip", "tar", "tar.gz", "none")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE_KEYS = frozenset({"url", "sha256", "size", "archive", "into", "strip", "manual", "name"})
_TOP_KEYS = frozenset({"files", "moves", "convert", "note"})


class DownloadSpecError(UserValueError):
    """A `download:` section that is not of the documented form (the message names the YAML and field)."""


@dataclass(frozen=True)
class FileSpec:
    """One file to fetch: where from, how to check it, how to unpack it."""
    url: str
    sha256: str | None
    size: int | None
    archive: str
    into: str = "."
    strip: int | str = 0  # a count, or "auto"
    manual: bool = False
    name: str = ""  # file name in the downloads folder; default: the URL's last path component

    @property
    def filename(self) -> str:
        return self.name or PurePosixPath(unquote(urlparse(self.url).path)).name


@dataclass(frozen=True)
class DownloadSpec:
    """A parsed `download:` section."""
    files: tuple[FileSpec, ...]
    moves: tuple[tuple[str, str], ...] = ()
    convert: str | None = None
    convert_args: dict = field(default_factory=dict)
    note: str = ""


def _relative(value, where: str) -> str:
    """A path inside the dataset root: relative, no '..'."""
    if not isinstance(value, str) or not value:
        raise DownloadSpecError(f"{where}: expected a relative path, got {value!r}")
    p = PurePosixPath(value)
    if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", value):
        raise DownloadSpecError(f"{where}: {value!r} must stay inside the dataset root (relative, no '..')")
    return value


def _check_keys(d, allowed, where: str, expected: str) -> None:
    """`d` must be a mapping whose keys are all in `allowed` (errors name `where`)."""
    if not isinstance(d, dict):
        raise DownloadSpecError(f"{where}: expected {expected}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise DownloadSpecError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _file(d, where: str) -> FileSpec:
    if isinstance(d, str):
        d = {"url": d, "sha256": None, "size": None, "archive": _guess_archive(d), "strip": "auto"}
    _check_keys(d, _FILE_KEYS, where, "a mapping with url, sha256, size, archive")
    url = d.get("url")
    if not isinstance(url, str) or urlparse(url).scheme not in ("http", "https"):
        raise DownloadSpecError(f"{where}.url: expected an http(s) URL, got {url!r}")
    for key in ("sha256", "size", "archive"):
        if key not in d:
            raise DownloadSpecError(f"{where}: key '{key}' is missing (write null where it is unknown)")
    sha = d["sha256"]
    if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha.lower())):
        raise DownloadSpecError(f"{where}.sha256: expected 64 hex digits or null, got {sha!r}")
    size = d["size"]
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise DownloadSpecError(f"{where}.size: expected a positive byte count or null, got {size!r}")
    if d["archive"] not in ARCHIVES:
        raise DownloadSpecError(f"{where}.archive: expected one of {ARCHIVES}, got {d['archive']!r}")
    strip = d.get("strip", 0)
    if strip != "auto" and (isinstance(strip, bool) or not isinstance(strip, int) or strip < 0):
        raise DownloadSpecError(f"{where}.strip: expected a count >= 0 or 'auto', got {strip!r}")
    name = d.get("name", "")
    if name and (not isinstance(name, str) or "/" in name or "\\" in name or name in (".", "..")):
        raise DownloadSpecError(f"{where}.name: expected a plain file name, got {name!r}")
    spec = FileSpec(url=url, sha256=sha.lower() if sha else None, size=size, archive=d["archive"],
                    into=_relative(d.get("into", "."), f"{where}.into"), strip=strip,
                    manual=bool(d.get("manual", False)), name=name)
    if not spec.filename:
        raise DownloadSpecError(f"{where}.url: {url!r} has no file name; give `name:`")
    return spec


def _guess_archive(url: str) -> str:
    path = urlparse(url).path.lower()
    for kind, ends in (("tar.gz", (".tar.gz", ".tgz")), ("tar", (".tar",)), ("zip", (".zip",))):
        if path.endswith(ends):
            return kind
    return "none"


def parse_download(raw, source: str) -> DownloadSpec | None:
    """The `download:` value of a data YAML as a DownloadSpec (None when absent); errors name `source`."""
    where = f"{source}: download"
    if raw is None:
        return None
    if isinstance(raw, str):
        if "\n" in raw.strip() or urlparse(raw.strip()).scheme not in ("http", "https"):
            raise DownloadSpecError(f"{where}: a string must be one http(s) URL; a download script is never run "
                                    f"(write the declarative form, see utils/downloads/spec.py)")
        return DownloadSpec(files=(_file(raw.strip(), f"{where}.files[0]"),))
    _check_keys(raw, _TOP_KEYS, where, "a URL or a mapping with `files:`")
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        raise DownloadSpecError(f"{where}.files: expected a non-empty list")
    parsed = tuple(_file(f, f"{where}.files[{i}]") for i, f in enumerate(files))
    names = [f.filename for f in parsed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DownloadSpecError(f"{where}.files: file name(s) {dup} used twice; give each a distinct `name:`")
    moves = []
    for i, m in enumerate(raw.get("moves") or []):
        if not isinstance(m, dict) or set(m) != {"from", "to"}:
            raise DownloadSpecError(f"{where}.moves[{i}]: expected {{from: path, to: path}}, got {m!r}")
        moves.append((_relative(m["from"], f"{where}.moves[{i}].from"), _relative(m["to"], f"{where}.moves[{i}].to")))
    conv, args = raw.get("convert"), {}
    if conv is not None:
        if not isinstance(conv, dict) or "name" not in conv or set(conv) - {"name", "args"}:
            raise DownloadSpecError(f"{where}.convert: expected {{name: converter, args: {{...}}}}, got {conv!r}")
        args = conv.get("args") or {}
        if not isinstance(args, dict):
            raise DownloadSpecError(f"{where}.convert.args: expected a mapping, got {args!r}")
        from utils.converters import check_converter_args
        try:
            check_converter_args(conv["name"], args)
        except (KeyError, TypeError) as e:
            raise DownloadSpecError(f"{where}.convert: {e.args[0] if e.args else e}") from None
        conv = conv["name"]
    note = raw.get("note", "")
    return DownloadSpec(files=parsed, moves=tuple(moves), convert=conv, convert_args=dict(args), note=str(note))
