"""Drawing boxes and labels on BGR images with OpenCV only (Hershey font, no downloads)."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

_PALETTE_HEX = ("FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334", "00D4BB",
                "2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7")


def colors(i: int, bgr: bool = True) -> tuple[int, int, int]:
    """Colour of class i from a fixed 20-colour palette."""
    h = _PALETTE_HEX[int(i) % len(_PALETTE_HEX)]
    rgb = tuple(int(h[k:k + 2], 16) for k in (0, 2, 4))
    return rgb[::-1] if bgr else rgb


def draw_boxes(im: np.ndarray, boxes_xyxy: np.ndarray | Sequence, labels: Sequence[str] | None = None,
               box_colors: Sequence[tuple[int, int, int]] | None = None, line_width: int | None = None) -> np.ndarray:
    """Draw xyxy pixel boxes (in place) with optional text labels above each box; returns im."""
    lw = line_width or max(round(sum(im.shape[:2]) / 2 * 0.003), 2)
    for k, b in enumerate(np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)):
        c = box_colors[k] if box_colors is not None else colors(k)
        p1, p2 = (int(b[0]), int(b[1])), (int(b[2]), int(b[3]))
        cv2.rectangle(im, p1, p2, c, thickness=lw, lineType=cv2.LINE_AA)
        if labels is not None and labels[k]:
            _draw_label(im, str(labels[k]), p1, c, lw)
    return im


def _draw_label(im: np.ndarray, text: str, p1: tuple[int, int], color: tuple[int, int, int], lw: int) -> None:
    tf = max(lw - 1, 1)
    scale = lw / 3
    w, h = cv2.getTextSize(text, 0, fontScale=scale, thickness=tf)[0]
    outside = p1[1] - h - 3 >= 0
    p2 = (p1[0] + w, p1[1] - h - 3 if outside else p1[1] + h + 3)
    cv2.rectangle(im, p1, p2, color, -1, cv2.LINE_AA)
    txt_color = (0, 0, 0) if sum(color) > 382 else (255, 255, 255)
    org = (p1[0], p1[1] - 2 if outside else p1[1] + h + 2)
    cv2.putText(im, text, org, 0, scale, txt_color, thickness=tf, lineType=cv2.LINE_AA)
