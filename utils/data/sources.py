"""Inputs of detect.py: an image, a folder, a glob, a .txt list, a video, a webcam index or a stream URL.

Every source yields `Frame`s: the original BGR image, where it came from and a label for the log line.
Files are read in order (videos frame by frame, every `vid_stride`-th frame). Webcams and stream URLs
are read by a background thread; for live sources (webcam, rtsp/rtmp/http) the oldest unprocessed frame
is dropped when inference falls behind, so results follow the live picture; `file://` streams lose no frame.
"""
from __future__ import annotations

import contextlib
import glob
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.cli import UserFileNotFoundError, UserValueError
from utils.data.files import IMG_FORMATS
from utils.data.image_decode import decode_image

VID_FORMATS = ("asf", "avi", "gif", "m4v", "mkv", "mov", "mp4", "mpeg", "mpg", "ts", "wmv")
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "file://")


@dataclass
class Frame:
    """One image to run on: `im0` BGR uint8, its source path, frame index (videos) and a log prefix."""
    im0: np.ndarray
    path: str
    index: int  # 1-based image number, or frame number of a video/stream
    label: str  # e.g. 'image 3/128 /data/a.jpg' or 'video 1/1 (frame 4/90) /data/v.mp4'
    is_video: bool = False
    fps: float = 30.0


def source_kind(source: str) -> str:
    """'webcam', 'stream', 'list', 'folder', 'glob', 'video' or 'image' (errors name the source)."""
    s = str(source)
    if s.isnumeric():
        return "webcam"
    if s.lower().startswith(STREAM_PREFIXES):
        return "stream"
    p = Path(s)
    if any(ch in s for ch in "*?["):
        return "glob"
    if p.is_dir():
        return "folder"
    if not p.exists():
        raise UserFileNotFoundError(f"--source {s}: no such file, folder, glob, webcam index or stream URL")
    suffix = p.suffix[1:].lower()
    if suffix == "txt":
        return "list"
    if suffix in VID_FORMATS:
        return "video"
    if suffix in IMG_FORMATS:
        return "image"
    raise UserValueError(f"--source {s}: unsupported file type '.{suffix}' (images: {', '.join(IMG_FORMATS)}; "
                     f"videos: {', '.join(VID_FORMATS)}; or a .txt list of paths)")


def media_files(source: str, kind: str) -> list[str]:
    """The image and video files of a file-like source, sorted (a .txt list keeps its order)."""
    if kind == "folder":
        files = sorted(str(f) for f in Path(source).iterdir() if f.is_file())
    elif kind == "glob":
        files = sorted(glob.glob(source, recursive=True))
    elif kind == "list":
        base = Path(source).parent
        lines = [ln.strip() for ln in Path(source).read_text(encoding="utf-8").splitlines() if ln.strip()]
        files = [ln if Path(ln).is_absolute() else str(base / ln) for ln in lines]
        missing = [f for f in files if not Path(f).is_file()]
        if missing:
            raise UserFileNotFoundError(f"{source}: listed files not found: {missing[:5]}")
    else:
        files = [source]
    files = [f for f in files if Path(f).suffix[1:].lower() in IMG_FORMATS + VID_FORMATS]
    if not files:
        raise UserFileNotFoundError(f"--source {source}: no images or videos found "
                                f"(images: {', '.join(IMG_FORMATS)}; videos: {', '.join(VID_FORMATS)})")
    return files


def _video_frames(path: str, number: str, vid_stride: int) -> Iterator[Frame]:
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise OSError(f"cannot open video {path}")
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) // vid_stride
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    k = 0
    try:
        while True:
            for _ in range(vid_stride - 1):
                cap.grab()
            ok, im0 = cap.read()
            if not ok:
                break
            k += 1
            yield Frame(im0, path, k, f"video {number} (frame {k}/{n}) {path}", True, fps / vid_stride)
    finally:
        cap.release()


def iter_files(files: list[str], vid_stride: int = 1) -> Iterator[Frame]:
    """Frames of images and videos in order; unreadable images raise an error naming the file."""
    n = len(files)
    for i, f in enumerate(files, 1):
        if Path(f).suffix[1:].lower() in VID_FORMATS:
            yield from _video_frames(f, f"{i}/{n}", vid_stride)
            continue
        im0 = decode_image(f)[0]  # libjpeg-turbo for JPEGs (cv2.imread's pixels, EXIF included), else OpenCV
        yield Frame(im0, f, i, f"image {i}/{n} {f}")


def _open_capture(source: str) -> cv2.VideoCapture:
    s = int(source) if source.isnumeric() else (source[len("file://"):] if source.startswith("file://") else source)
    cap = cv2.VideoCapture(s)
    if not cap.isOpened():
        what = f"webcam {source} (no camera with that index?)" if source.isnumeric() else f"stream {source}"
        raise OSError(f"cannot open {what}")
    return cap


def _reader(cap: cv2.VideoCapture, q: queue.Queue, stop: threading.Event, vid_stride: int, live: bool) -> None:
    """Read every vid_stride-th frame into `q`; live sources replace the oldest waiting frame when q is full."""
    n = 0
    while not stop.is_set():
        ok, im = cap.read()
        if not ok:
            break
        n += 1
        if n % vid_stride:
            continue
        while not stop.is_set():
            try:
                q.put(im, timeout=0.1)
                break
            except queue.Full:
                if live:
                    with contextlib.suppress(queue.Empty):
                        q.get_nowait()
    q.put(None)


def iter_stream(source: str, vid_stride: int = 1) -> Iterator[Frame]:
    """Frames of a webcam or stream read by a background thread (ends when the stream ends)."""
    cap = _open_capture(source)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    live = not source.startswith("file://")
    q: queue.Queue = queue.Queue(maxsize=2 if live else 8)
    stop = threading.Event()
    thread = threading.Thread(target=_reader, args=(cap, q, stop, vid_stride, live), daemon=True)
    thread.start()
    k = 0
    try:
        while (im0 := q.get()) is not None:
            k += 1
            yield Frame(im0, source, k, f"stream (frame {k}) {source}", True, fps / vid_stride)
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            q.get_nowait()  # unblock a reader waiting on a full queue
        thread.join(timeout=2)
        cap.release()


def iter_source(source: str, vid_stride: int = 1) -> tuple[Iterator[Frame], str]:
    """(frames, kind) for any detect.py --source."""
    if vid_stride < 1:
        raise UserValueError(f"--vid-stride must be >= 1, got {vid_stride}")
    kind = source_kind(str(source))
    if kind in ("webcam", "stream"):
        return iter_stream(str(source), vid_stride), kind
    return iter_files(media_files(str(source), kind), vid_stride), kind
