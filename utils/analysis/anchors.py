"""Anchor analysis: a model's anchors against a dataset's box sizes, per level, before and after k-means.

Metrics follow `utils.autoanchor` (YOLOv5's): a label is recallable by an anchor when both its width and
height ratios to it are within `thr` (the loss's anchor_t); BPR is the share of labels with at least one
such anchor, AAT the mean number of such anchors per label. Per-level figures use that level's anchors only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch.nn as nn

from utils.analysis.common import save_figure
from utils.autoanchor import anchor_metrics, kmean_anchors, label_wh


@dataclass(frozen=True)
class AnchorFit:
    """Anchors (nl, na, 2) in pixels with their overall and per-level (BPR, AAT)."""

    name: str
    anchors: np.ndarray
    bpr: float
    aat: float
    levels: list[tuple[float, float]]

    def summary(self, strides: list[float]) -> str:
        lines = [f"{self.name}: BPR {self.bpr:.4f}, {self.aat:.2f} anchors above threshold per label"]
        for lv, ((bpr, aat), s, a) in enumerate(zip(self.levels, strides, self.anchors)):
            sizes = ", ".join(f"{w:.0f}x{h:.0f}" for w, h in a)
            lines.append(f"  P{lv} stride {s:g}: anchors {sizes}; BPR {bpr:.4f}, AAT {aat:.2f}")
        return "\n".join(lines)


def model_anchors_px(model: nn.Module) -> tuple[np.ndarray, list[float]]:
    """The head's anchors in pixels (nl, na, 2) and its strides."""
    head = model.detect
    if head is None:
        raise ValueError("the model has no Detect head, so no anchors to analyse")
    stride = head.stride.detach().cpu()
    return (head.anchors.detach().cpu() * stride.view(-1, 1, 1)).numpy(), stride.tolist()


def fit(name: str, wh: np.ndarray, anchors: np.ndarray, thr: float = 4.0) -> AnchorFit:
    """Overall and per-level metrics of pixel anchors (nl, na, 2) for label sizes wh (n, 2)."""
    bpr, aat = anchor_metrics(wh, anchors.reshape(-1, 2), thr)
    return AnchorFit(name, anchors, bpr, aat, [anchor_metrics(wh, a, thr) for a in anchors])


def analyse(model: nn.Module, dataset: SimpleNamespace, imgsz: int = 640, thr: float = 4.0, gen: int = 1000,
            rng: np.random.Generator | None = None) -> tuple[np.ndarray, AnchorFit, AnchorFit]:
    """(label sizes in pixels at imgsz, fit of the model's anchors, fit of `kmean_anchors`' anchors)."""
    anchors, _ = model_anchors_px(model)
    wh = label_wh(dataset.shapes, dataset.labels, imgsz)
    before = fit("model anchors", wh, anchors, thr)
    new = kmean_anchors(dataset, n=anchors.shape[0] * anchors.shape[1], img_size=imgsz, thr=thr, gen=gen,
                        verbose=False, rng=rng)
    after = fit(f"kmean_anchors (gen={gen})", wh, np.asarray(new).reshape(anchors.shape), thr)
    return wh, before, after


def plot_anchors(wh: np.ndarray, fits: list[AnchorFit], fname: str | Path, thr: float = 4.0,
                 strides: list[float] | None = None) -> Path:
    """One row per anchor set, one column per level: labels (log w, log h) coloured when that level recalls them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nl = fits[0].anchors.shape[0]
    fig, axes = plt.subplots(len(fits), nl, figsize=(4.2 * nl, 4 * len(fits)), squeeze=False, sharex=True, sharey=True)
    w = np.clip(wh, 1, None)
    for r, f in enumerate(fits):
        for lv in range(nl):
            ax, a = axes[r, lv], f.anchors[lv]
            ratio = w[:, None] / a[None]
            hit = (np.minimum(ratio, 1 / ratio).min(2) > 1 / thr).any(1)
            ax.scatter(w[~hit, 0], w[~hit, 1], s=3, c="0.75", label="not recalled")
            ax.scatter(w[hit, 0], w[hit, 1], s=3, c="tab:blue", label="recalled by this level")
            ax.scatter(a[:, 0], a[:, 1], s=120, marker="*", c="tab:red", ec="k", label="anchors", zorder=3)
            for aw, ah in a:  # the region an anchor can reach: ratios within thr on both sides
                ax.add_patch(plt.Rectangle((aw / thr, ah / thr), aw * thr - aw / thr, ah * thr - ah / thr,
                                           fill=False, ec="tab:red", lw=0.6, alpha=0.6))
            ax.set_xscale("log")
            ax.set_yscale("log")
            s = f" stride {strides[lv]:g}" if strides else ""
            ax.set_title(f"{f.name}\nP{lv}{s}: BPR {f.levels[lv][0]:.3f}, AAT {f.levels[lv][1]:.2f}", fontsize=9)
            ax.set_xlabel("box width (px)")
            ax.set_ylabel("box height (px)")
    axes[0, 0].legend(loc="upper left", fontsize=7)
    return save_figure(fig, fname)
