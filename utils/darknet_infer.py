"""Darknet's inference path (`darknet detector test`): preprocessing, yolo-layer boxes, thresholds and NMS.

- Input: RGB, pixel / 255, Darknet's bilinear resize (a horizontal pass, then a vertical one, with scale
  (in - 1) / (out - 1) and the last column/row copied), or its letterbox (aspect kept, fill 0.5, centred).
- Boxes: the head's yolo decode, relative to the network input, then undone from the letterbox.
- A box is a candidate when objectness > thresh; class prob = objectness * class, zeroed if <= thresh.
- NMS per class over the candidates sorted by that class's prob; a box is dropped when its IoU (in
  relative coordinates) with a kept box exceeds `nms`. Darknet's sort-based and greedy NMS are the same
  computation for this rule.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from utils.nms_kernel import nms as nms_kernel


def read_rgb(image: str | Path | np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] from a path or a BGR uint8 array (as cv2.imread gives)."""
    if isinstance(image, (str, Path)):
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image: {image}")
    else:
        bgr = np.asarray(image)
        if bgr.ndim != 3 or bgr.shape[2] != 3:
            raise ValueError(f"expected a BGR image (H, W, 3), got shape {bgr.shape}")
    return bgr[..., ::-1].astype(np.float32) / 255.0


def darknet_resize(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet's resize_image on (H, W, C) float32: horizontal then vertical linear pass, float32 arithmetic."""
    ih, iw = im.shape[:2]
    if (iw, ih) == (w, h):
        return im.copy()
    part = _linear_pass(im, w, axis=1)
    return _linear_pass(part, h, axis=0)


def _linear_pass(im: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """One Darknet pass along `axis`: out[c] = (1 - d) * in[ix] + d * in[ix + 1], sx = c * (n_in - 1) / (n_out - 1)."""
    n_in = im.shape[axis]
    scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0)
    s = np.arange(n_out, dtype=np.float32) * scale
    ix = s.astype(np.int64)
    d = (s - ix.astype(np.float32)).astype(np.float32)
    last = (np.arange(n_out) == n_out - 1) | (n_in == 1)
    ix = np.where(last, n_in - 1, ix)
    d = np.where(last, np.float32(0), d)
    shape = [1, 1, 1]
    shape[axis] = n_out
    d = d.reshape(shape)
    a = np.take(im, ix, axis=axis)
    b = np.take(im, np.minimum(ix + 1, n_in - 1), axis=axis)
    if axis == 1:  # Darknet's horizontal pass: (1 - d) * a + d * b
        return ((np.float32(1) - d) * a + d * b).astype(np.float32)
    # the vertical pass writes (1 - d) * a, then adds d * b (skipped on the last row)
    return ((np.float32(1) - d) * a + np.where(last.reshape(shape), np.float32(0), d * b)).astype(np.float32)


def letterbox_size(iw: int, ih: int, w: int, h: int) -> tuple[int, int]:
    """Darknet's letterbox inner size (integer arithmetic as in letterbox_image)."""
    if w / iw < h / ih:
        return w, ih * w // iw
    return iw * h // ih, h


def darknet_letterbox(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize with the aspect kept, centred on a 0.5 grey canvas (Darknet's letterbox_image)."""
    ih, iw = im.shape[:2]
    nw, nh = letterbox_size(iw, ih, w, h)
    out = np.full((h, w, im.shape[2]), 0.5, dtype=np.float32)
    dx, dy = (w - nw) // 2, (h - nh) // 2
    out[dy:dy + nh, dx:dx + nw] = darknet_resize(im, nw, nh)
    return out


def preprocess(image: str | Path | np.ndarray, w: int, h: int, letterbox: bool = False) -> torch.Tensor:
    """The network input (1, 3, h, w) float32 Darknet builds from an image."""
    rgb = read_rgb(image)
    im = darknet_letterbox(rgb, w, h) if letterbox else darknet_resize(rgb, w, h)
    return torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)))[None]


def correct_boxes(xywh: torch.Tensor, iw: int, ih: int, w: int, h: int, letterbox: bool) -> torch.Tensor:
    """Relative boxes on the network input -> relative to the image (Darknet's correct_yolo_boxes)."""
    nw, nh = letterbox_size(iw, ih, w, h) if letterbox else (w, h)
    rw, rh = nw / w, nh / h
    out = xywh.clone()
    out[:, 0] = (xywh[:, 0] - (w - nw) / 2.0 / w) / rw
    out[:, 1] = (xywh[:, 1] - (h - nh) / 2.0 / h) / rh
    out[:, 2] = xywh[:, 2] / rw
    out[:, 3] = xywh[:, 3] / rh
    return out


def darknet_nms(xywh: torch.Tensor, probs: torch.Tensor, nms: float = 0.45) -> torch.Tensor:
    """Per-class greedy NMS on relative boxes; returns probs with suppressed (box, class) entries zeroed."""
    out = probs.clone()
    box, cls = torch.nonzero(probs > 0, as_tuple=True)
    if box.numel():
        xyxy = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
        kept = torch.zeros_like(box, dtype=torch.bool)
        for c in cls.unique():  # each class alone: torchvision.ops.batched_nms's exact (per-class) rule
            (idx,) = torch.nonzero(cls == c, as_tuple=True)
            kept[idx[nms_kernel(xyxy[box[idx]].double(), probs[box[idx], c].double(), nms)]] = True
        out[box[~kept], cls[~kept]] = 0
    return out


def darknet_postprocess(decoded: torch.Tensor, net_wh: tuple[int, int], image_wh: tuple[int, int],
                        letterbox: bool = False, thresh: float = 0.25, nms: float = 0.45
                        ) -> list[tuple[int, float, float, float, float, float]]:
    """Decoded head rows (N, 5 + nc) in network pixels -> [(cls, prob, x1, y1, x2, y2)] in image pixels."""
    (w, h), (iw, ih) = net_wh, image_wh
    d = decoded.detach().float().cpu()
    d = d[d[:, 4] > thresh]
    xywh = d[:, :4] / torch.tensor([w, h, w, h], dtype=d.dtype)
    xywh = correct_boxes(xywh, iw, ih, w, h, letterbox)
    probs = d[:, 4:5] * d[:, 5:]
    probs = torch.where(probs > thresh, probs, torch.zeros_like(probs))
    probs = darknet_nms(xywh, probs, nms)
    dets = []
    for b, c in torch.nonzero(probs > thresh).tolist():
        x, y, bw, bh = xywh[b].tolist()
        dets.append((c, float(probs[b, c]), (x - bw / 2) * iw, (y - bh / 2) * ih, (x + bw / 2) * iw,
                     (y + bh / 2) * ih))
    return sorted(dets, key=lambda t: -t[1])


def network_size(model: torch.nn.Module) -> tuple[int, int]:
    """(width, height) of the network input: the cfg's [net] size for a converted model, else 416."""
    dk = getattr(model, "yaml", {}).get("darknet", {})
    return int(dk.get("width", 416)), int(dk.get("height", 416))


def darknet_detect(model: torch.nn.Module, image: str | Path | np.ndarray, letterbox: bool = False,
                   thresh: float = 0.25, nms: float = 0.45) -> list[tuple[int, float, float, float, float, float]]:
    """Darknet's `detector test` on one image: [(cls, prob, x1, y1, x2, y2)] in image pixels, best first."""
    w, h = network_size(model)
    rgb = read_rgb(image)
    im = darknet_letterbox(rgb, w, h) if letterbox else darknet_resize(rgb, w, h)
    x = torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)))[None]
    p = next(model.parameters())
    was_training = model.training
    model.eval()
    with torch.no_grad():
        decoded = model(x.to(p.device, p.dtype))[0][0]
    model.train(was_training)
    return darknet_postprocess(decoded, (w, h), (rgb.shape[1], rgb.shape[0]), letterbox, thresh, nms)
