"""What detect.py writes per frame: annotated images/videos, labels/*.txt, crops/<class>/*.jpg; a frame's detections
are an (n, 6) float32 array [x1, y1, x2, y2, conf, cls] in its pixels."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np

from utils.annotate import colors, draw_boxes
from utils.yolo_txt import detection_lines

LOGGER = logging.getLogger("yolo.detect")


def crop_box(im0: np.ndarray, xyxy, gain: float = 1.02, pad: int = 10) -> np.ndarray:
    """The box region enlarged by `gain` and `pad` pixels (as YOLOv5's save_one_box), clipped to the image."""
    x1, y1, x2, y2 = xyxy
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * gain + pad, (y2 - y1) * gain + pad
    H, W = im0.shape[:2]
    a, b = int(max(cx - w / 2, 0)), int(max(cy - h / 2, 0))
    c, d = int(min(cx + w / 2, W)), int(min(cy + h / 2, H))
    return im0[b:d, a:c]


def _safe_name(path: str) -> str:
    """A file name for a source (stream URLs become 'stream_<host...>')."""
    if "://" in path:
        return "stream_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", path.split("://", 1)[1]).strip("_")[:60]
    return Path(path).name


class ResultWriter:
    """Writes each frame's outputs; image files are written by `pool` (a 1-thread executor keeps order)."""

    def __init__(self, save_dir: Path, names: list[str], opt) -> None:
        self.save_dir, self.names, self.opt = save_dir, names, opt
        self.save_img = not opt.nosave
        self.videos: dict[str, cv2.VideoWriter] = {}
        self.n_labels = 0
        self.pool = None
        if opt.save_txt:
            (save_dir / "labels").mkdir(parents=True, exist_ok=True)

    def write(self, frame, det: np.ndarray) -> None:
        """Labels, crops and the annotated image of one frame."""
        opt = self.opt
        stem = Path(_safe_name(frame.path)).stem + (f"_{frame.index}" if frame.is_video else "")
        if opt.save_txt:
            self._append(self.save_dir / "labels" / f"{stem}.txt", detection_lines(det, frame.im0.shape[:2],
                                                                                 opt.save_conf), frame.is_video)
        if opt.save_crop:
            self._crops(frame.im0, det, stem)
        if self.save_img or opt.view_img:
            im = self._annotate(frame.im0.copy(), det)
            if opt.view_img:
                self._show(frame.path, im)
            if self.save_img:
                self._submit(self._save, frame, im)

    def _append(self, path: Path, lines: list[str], append: bool) -> None:
        with open(path, "a" if append else "w") as f:
            f.writelines(f"{ln}\n" for ln in lines)
        self.n_labels += 1

    def _crops(self, im0: np.ndarray, det: np.ndarray, stem: str) -> None:
        for k, (*xyxy, _, cls) in enumerate(det.tolist()):
            folder = self.save_dir / "crops" / self.names[int(cls)]
            folder.mkdir(parents=True, exist_ok=True)
            self._submit(cv2.imwrite, str(folder / f"{stem}_{k}.jpg"), crop_box(im0, xyxy).copy())

    def _annotate(self, im: np.ndarray, det: np.ndarray) -> np.ndarray:
        if not len(det):
            return im
        opt, cls = self.opt, det[:, 5].astype(int).tolist()
        labels = None if opt.hide_labels else [
            self.names[c] if opt.hide_conf else f"{self.names[c]} {s:.2f}" for c, s in zip(cls, det[:, 4].tolist())]
        return draw_boxes(im, det[:, :4], labels, [colors(c) for c in cls], opt.line_thickness)

    def _show(self, name: str, im: np.ndarray) -> None:
        try:
            cv2.imshow(name, im)
            cv2.waitKey(1)
        except cv2.error as e:
            LOGGER.warning(f"--view-img: cannot open a window ({e.msg if hasattr(e, 'msg') else e}); disabled")
            self.opt.view_img = False

    def _submit(self, fn, *args) -> None:
        if self.pool is None:
            fn(*args)
        else:
            self.pool.submit(fn, *args)

    def _save(self, frame, im: np.ndarray) -> None:
        name = _safe_name(frame.path)
        if not frame.is_video:
            cv2.imwrite(str(self.save_dir / name), im)
            return
        if frame.path not in self.videos:
            h, w = im.shape[:2]
            path = str((self.save_dir / name).with_suffix(".mp4"))
            self.videos[frame.path] = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), frame.fps, (w, h))
        self.videos[frame.path].write(im)

    def close(self) -> None:
        """Finish pending writes (caller shuts the pool down) and release video writers."""
        if self.pool is not None:
            self.pool.submit(lambda: None).result()
        for v in self.videos.values():
            v.release()
        self.videos.clear()

    def summary(self) -> str:
        s = f"Results saved to {self.save_dir}"
        if self.opt.save_txt:
            s += f"\n{self.n_labels} labels saved to {self.save_dir / 'labels'}"
        return s
