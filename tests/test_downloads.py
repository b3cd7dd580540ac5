"""Declarative dataset downloads against a local HTTP server (127.0.0.1, started here; never the internet)."""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.local_http import serve
from utils.downloads import ensure_dataset
from utils.downloads.archive import UnsafeArchiveError, unpack
from utils.downloads.fetch import ChecksumError, DownloadError, fetch
from utils.downloads.install import downloads_dir
from utils.downloads.spec import DownloadSpecError, parse_download

REPO = Path(__file__).resolve().parents[1]


def _jpg(w: int = 32, h: int = 24, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _members(top: str = "tiny") -> dict[str, bytes]:
    """A tiny YOLO dataset (2 train, 1 val image) under one top folder, as YOLOv5's zips are."""
    m = {}
    for split, n in (("train", 2), ("val", 1)):
        for i in range(n):
            m[f"{top}/images/{split}/{i}.jpg"] = _jpg(seed=i)
            m[f"{top}/labels/{split}/{i}.txt"] = f"{i % 2} 0.5 0.5 0.25 0.5\n".encode()
    return m


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _yaml(tmp: Path, files: list[dict], **extra) -> Path:
    d = {"path": "ds/tiny", "train": "images/train", "val": "images/val", "names": ["a", "b"],
         "download": {"files": files, **extra}}
    p = tmp / "tiny.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def _entry(url: str, archive: Path, **kw) -> dict:
    return {"url": url, "sha256": _sha(archive), "size": archive.stat().st_size, "archive": "zip", "strip": 1, **kw}


def _check_installed(root: Path) -> None:
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == sorted(
        k.split("/", 1)[1] for k in _members())
    assert (root / "labels/train/1.txt").read_text() == "1 0.5 0.5 0.25 0.5\n"
    assert not list(root.parent.glob(".tiny.partial*"))


def test_good_download_installs_and_verifies(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    arc = _zip(www / "tiny.zip", _members())
    with serve(www) as srv:
        cfg = ensure_dataset(_yaml(tmp_path, [_entry(srv.url("tiny.zip"), arc)]), progress=False)
        assert srv.count("tiny.zip") == 1
        root = tmp_path / "ds" / "tiny"
        assert cfg.path == root and len(cfg.train) == 1 and cfg.train[0].is_dir()
        _check_installed(root)
        assert not (downloads_dir(root) / "tiny.zip").exists()  # archive removed once installed
        ensure_dataset(tmp_path / "tiny.yaml", progress=False)  # present: nothing fetched again
        assert srv.count("tiny.zip") == 1


def test_partial_file_is_resumed_with_range(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    arc = _zip(www / "tiny.zip", _members())
    data = arc.read_bytes()
    part = downloads_dir(tmp_path / "ds" / "tiny") / "tiny.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    with serve(www) as srv:
        ensure_dataset(_yaml(tmp_path, [_entry(srv.url("tiny.zip"), arc)]), progress=False)
        assert srv.requests == [("/tiny.zip", "bytes=1000-")]
    _check_installed(tmp_path / "ds" / "tiny")


def test_wrong_checksum_is_refused_and_nothing_unpacked(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    arc = _zip(www / "tiny.zip", _members())
    with serve(www) as srv:
        y = _yaml(tmp_path, [_entry(srv.url("tiny.zip"), arc, sha256="0" * 64)])
        with pytest.raises(ChecksumError, match="does not match the expected 0000"):
            ensure_dataset(y, progress=False)
    root = tmp_path / "ds" / "tiny"
    assert not root.exists() and not list((tmp_path / "ds").glob(".tiny.partial*"))
    assert not list(downloads_dir(root).glob("tiny.zip*"))  # the bad bytes are deleted, not kept


def test_dropped_connection_is_retried_and_resumed(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    arc = _zip(www / "tiny.zip", _members())
    with serve(www, drop_first=2) as srv:
        out = fetch(srv.url("tiny.zip"), tmp_path / "dl" / "tiny.zip", _sha(arc), arc.stat().st_size,
                    backoff=0.01, progress=False)
        ranges = [r for _, r in srv.requests]
    assert out.read_bytes() == arc.read_bytes()
    half = arc.stat().st_size // 2
    assert ranges == [None, f"bytes={half}-", f"bytes={half + (arc.stat().st_size - half) // 2}-"]


def test_dropped_connection_without_range_support_restarts(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    arc = _zip(www / "tiny.zip", _members())
    with serve(www, drop_first=1, ranges=False) as srv:
        out = fetch(srv.url("tiny.zip"), tmp_path / "tiny.zip", _sha(arc), None, backoff=0.01, progress=False)
        assert srv.count("tiny.zip") == 2
    assert out.read_bytes() == arc.read_bytes()


def test_http_404_fails_at_once_with_the_url(tmp_path):
    with serve(tmp_path) as srv:
        with pytest.raises(DownloadError, match="missing.zip: HTTP 404"):
            fetch(srv.url("missing.zip"), tmp_path / "x.zip", backoff=0.01, progress=False)
        assert srv.count("missing.zip") == 1


def test_archive_with_parent_member_is_refused(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    members = _members()
    members["tiny/../../escaped.txt"] = b"x"
    arc = _zip(www / "tiny.zip", members)
    with serve(www) as srv:
        with pytest.raises(UnsafeArchiveError, match=r"escaped.txt"):
            ensure_dataset(_yaml(tmp_path, [_entry(srv.url("tiny.zip"), arc)]), progress=False)
    assert not (tmp_path / "ds" / "tiny").exists()
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not [p for p in (tmp_path / "ds").rglob("*.jpg")]  # refused before anything was written


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for m in members:
            tf.addfile(m, io.BytesIO(data[m.name]) if m.name in data else None)
    return path


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.size, m.type, m.linkname = size, kind, link
    return m


@pytest.mark.parametrize("members", [
    [_info("/abs.txt", 1)],
    [_info("ok/link", kind=tarfile.SYMTYPE, link="../../outside")],
    [_info("link", kind=tarfile.SYMTYPE, link="/etc")],
    [_info("d/l", kind=tarfile.SYMTYPE, link=".."), _info("d/l/l2", kind=tarfile.SYMTYPE, link="..")],
    [_info("hard", kind=tarfile.LNKTYPE, link="x")],
])
def test_tar_members_escaping_the_target_are_refused(tmp_path, members):
    arc = _tar(tmp_path / "bad.tar.gz", [_info("good.txt", 1), *members], {"good.txt": b"g", "/abs.txt": b"a"})
    with pytest.raises(UnsafeArchiveError):
        unpack(arc, "tar.gz", tmp_path / "out")
    assert not (tmp_path / "out" / "good.txt").exists()


def test_tar_inner_symlink_and_strip(tmp_path):
    m = [_info("top/a.txt", 1), _info("top/sub/link", kind=tarfile.SYMTYPE, link="../a.txt")]
    arc = _tar(tmp_path / "ok.tar.gz", m, {"top/a.txt": b"A"})
    unpack(arc, "tar.gz", tmp_path / "out", strip="auto")
    assert (tmp_path / "out" / "sub" / "link").read_bytes() == b"A"


@pytest.mark.slow
def test_two_processes_download_once(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    members = _members()
    members["tiny/blob.bin"] = np.random.default_rng(0).bytes(600_000)  # ~3 s at the server's pace below
    arc = _zip(www / "tiny.zip", members)
    with serve(www, delay=0.02) as srv:
        y = _yaml(tmp_path, [_entry(srv.url("tiny.zip"), arc)])
        code = (f"import logging, sys; sys.path.insert(0, {str(REPO)!r}); logging.basicConfig(level=logging.INFO); "
                f"from utils.downloads import ensure_dataset; "
                f"print(len(ensure_dataset({str(y)!r}, progress=False).train))")
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert [o[0].strip() for o in outs] == ["1", "1"]
        assert srv.count("tiny.zip") == 1
    logs = sorted("installed by another process" in o[1] for o in outs)
    assert logs == [False, True], outs  # one installed it, the other waited on the lock and reused it
    root = tmp_path / "ds" / "tiny"
    assert (root / "blob.bin").read_bytes() == members["tiny/blob.bin"]
    (root / "blob.bin").unlink()
    _check_installed(root)


def test_no_network_says_what_to_put_where_and_accepts_the_file_by_hand(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    arc = _zip(www / "tiny.zip", _members())
    with serve(www) as srv:
        url = srv.url("tiny.zip")
    y = _yaml(tmp_path, [_entry(url, arc)])  # the server is gone: connection refused
    import utils.downloads.fetch as fetch_mod
    root = tmp_path / "ds" / "tiny"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fetch_mod.time, "sleep", lambda s: None)
        with pytest.raises(DownloadError) as e:
            ensure_dataset(y, progress=False)
    msg = str(e.value)
    assert url in msg and str(downloads_dir(root) / "tiny.zip") in msg and "--data <folder>" in msg
    assert not root.exists()
    (downloads_dir(root) / "tiny.zip").write_bytes(arc.read_bytes())  # put there by hand
    ensure_dataset(y, progress=False)
    _check_installed(root)


def test_manual_file_is_never_fetched(tmp_path):
    y = _yaml(tmp_path, [{"url": "https://example.invalid/tiny.zip", "sha256": None, "size": None, "archive": "zip",
                          "manual": True}], note="register first")
    with pytest.raises(DownloadError, match="cannot be downloaded automatically(.|\n)*register first"):
        ensure_dataset(y, progress=False)


def test_failing_converter_leaves_no_dataset(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    arc = _zip(www / "tiny.zip", _members())
    with serve(www) as srv:
        y = _yaml(tmp_path, [_entry(srv.url("tiny.zip"), arc)], convert={"name": "voc", "args": {}})
        with pytest.raises(FileNotFoundError, match="devkit"):
            ensure_dataset(y, progress=False)
    assert not (tmp_path / "ds" / "tiny").exists() and not (tmp_path / "ds" / ".tiny.partial").exists()
    assert (downloads_dir(tmp_path / "ds" / "tiny") / "tiny.zip").is_file()  # kept: the next run reuses it


def test_folder_laid_out_by_hand(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "images" / split / "0.jpg").write_bytes(_jpg())
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    cfg = ensure_dataset(tmp_path)
    assert cfg.names == ["cat", "dog"] and cfg.val == [tmp_path / "images" / "val"]


@pytest.mark.parametrize("raw, match", [
    ("import os\nos.system('x')", "never run"),
    ({"files": [{"url": "ftp://x/a.zip", "sha256": None, "size": None, "archive": "zip"}]}, "http"),
    ({"files": [{"url": "https://x/a.zip", "size": None, "archive": "zip"}]}, "'sha256' is missing"),
    ({"files": [{"url": "https://x/a.zip", "sha256": "abc", "size": None, "archive": "zip"}]}, "64 hex"),
    ({"files": [{"url": "https://x/a.zip", "sha256": None, "size": None, "archive": "rar"}]}, "archive"),
    ({"files": [{"url": "https://x/a.zip", "sha256": None, "size": None, "archive": "zip", "into": "../x"}]}, "inside"),
    ({"files": [{"url": "https://x/a.zip", "sha256": None, "size": None, "archive": "zip"}],
      "convert": {"name": "vocc"}}, "did you mean voc"),
    ({"files": [{"url": "https://x/a.zip", "sha256": None, "size": None, "archive": "zip"}],
      "convert": {"name": "voc", "args": {"bogus": 1}}}, "bogus"),
])
def test_bad_spec_is_refused_naming_the_field(raw, match):
    with pytest.raises(DownloadSpecError, match=match) as e:
        parse_download(raw, "my.yaml")
    assert "my.yaml: download" in str(e.value)


def test_a_bad_file_put_by_hand_is_refused_not_deleted(tmp_path):
    arc = _zip(tmp_path / "tiny.zip", _members())
    dest = tmp_path / "dl" / "tiny.zip"
    dest.parent.mkdir()
    dest.write_bytes(arc.read_bytes()[:-1] + b"X")
    with pytest.raises(ChecksumError, match="replace or remove"):
        fetch("http://127.0.0.1:9/tiny.zip", dest, _sha(arc), arc.stat().st_size, progress=False)
    assert dest.exists()
    dest.write_bytes(arc.read_bytes())
    assert fetch("http://127.0.0.1:9/tiny.zip", dest, _sha(arc), arc.stat().st_size, progress=False) == dest


def test_a_present_dataset_ignores_a_yolov5_download_script(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "ds/tiny/images" / split).mkdir(parents=True)
    y = tmp_path / "tiny.yaml"
    y.write_text(yaml.safe_dump({"path": "ds/tiny", "train": "images/train", "val": "images/val", "names": ["a"],
                                 "download": "import os\nos.remove('x')\n"}))
    assert ensure_dataset(y).names == ["a"]
    (tmp_path / "ds/tiny/images/val").rmdir()
    with pytest.raises(DownloadSpecError, match="never run"):
        ensure_dataset(y)


def test_install_into_an_existing_root_merges(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    arc = _zip(www / "tiny.zip", _members())
    root = tmp_path / "ds" / "tiny"
    (root / "labels" / "train").mkdir(parents=True)
    (root / "notes.txt").write_text("mine")
    (root / "labels" / "train" / "0.txt").write_text("stale\n")
    with serve(www) as srv:
        ensure_dataset(_yaml(tmp_path, [_entry(srv.url("tiny.zip"), arc)]), progress=False)
    assert (root / "notes.txt").read_text() == "mine"
    (root / "notes.txt").unlink()
    _check_installed(root)  # the archive's files replace the stale ones
