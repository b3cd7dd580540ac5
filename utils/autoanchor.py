"""AutoAnchor: how well a model's anchors fit a dataset's boxes, and k-means + genetic evolution of new ones.

Fit metric (YOLOv5): for a label of size wh and an anchor k, x = min over w and h of min(r, 1/r) with
r = wh / k; a label is "recallable" when its best anchor has x > 1/thr (the loss's anchor_t test).
BPR (best possible recall) is the share of recallable labels; AAT the mean number of anchors per label
passing the test.

Run alone: `python utils/autoanchor.py --data my.yaml --img 640 --n 9` prints anchors for a model YAML.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

LOGGER = logging.getLogger(__name__)
PREFIX = "AutoAnchor: "
BPR_REFIT = 0.98  # recompute anchors below this best possible recall
MUTATION_PROB, MUTATION_SIGMA = 0.9, 0.1


class AnchorCheck(NamedTuple):
    """Outcome of `check_anchors`: metrics of the anchors the head holds afterwards."""

    bpr: float
    aat: float
    updated: bool


def label_wh(shapes: np.ndarray, labels: list[np.ndarray], img_size: int,
             scale: np.ndarray | None = None) -> np.ndarray:
    """Label sizes (n, 2) in pixels once each image's long side is resized to `img_size` (times `scale`)."""
    shapes = np.asarray(shapes, dtype=np.float64)
    if shapes.ndim != 2 or shapes.shape[1] != 2 or len(shapes) != len(labels):
        raise ValueError(f"dataset.shapes must be (n_images, 2) matching {len(labels)} label arrays, "
                         f"got {shapes.shape}")
    sizes = img_size * shapes / shapes.max(1, keepdims=True)
    if scale is not None:
        sizes = sizes * scale
    parts = []
    for i, (size, lab) in enumerate(zip(sizes, labels)):
        lab = np.asarray(lab)
        if lab.ndim != 2 or lab.shape[1] < 5:
            raise ValueError(f"dataset.labels[{i}] must be (n, 5) [cls, cx, cy, w, h], got {lab.shape}")
        parts.append(lab[:, 3:5] * size)
    return np.concatenate(parts) if parts else np.zeros((0, 2))


def _ratio_metric(wh: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """x (n_labels, n_anchors): the worse of the width and height ratios, each folded into (0, 1]."""
    r = wh[:, None] / anchors[None]
    return torch.min(r, 1 / r).min(2)[0]


def anchor_metrics(wh: Any, anchors: Any, thr: float = 4.0) -> tuple[float, float]:
    """(BPR, anchors above threshold per label) of pixel anchors (k, 2) for label sizes wh (n, 2)."""
    wh_t = torch.as_tensor(np.asarray(wh), dtype=torch.float32)
    k = torch.as_tensor(np.asarray(anchors.cpu() if isinstance(anchors, torch.Tensor) else anchors),
                        dtype=torch.float32).view(-1, 2)
    x = _ratio_metric(wh_t, k)
    best = x.max(1)[0]
    aat = (x > 1 / thr).float().sum(1).mean()
    bpr = (best > 1 / thr).float().mean()
    return float(bpr), float(aat)


def order_anchors(anchors_px: torch.Tensor, stride: torch.Tensor) -> torch.Tensor:
    """Flip levels of pixel anchors (nl, na, 2) when their mean area does not grow with the stride."""
    area = anchors_px.prod(-1).mean(-1).view(-1)
    da, ds = area[-1] - area[0], stride.view(-1)[-1] - stride.view(-1)[0]
    if da and ds and (da.sign() != ds.sign()):
        return anchors_px.flip(0)
    return anchors_px


def check_anchor_order(head: Any) -> bool:
    """Make `head.anchors` (grid units) follow the stride order, in place; True if they were flipped."""
    stride = head.stride.to(head.anchors.device).view(-1, 1, 1)
    pixels = head.anchors * stride
    ordered = order_anchors(pixels, stride)
    if ordered is pixels:
        return False
    LOGGER.info(f"{PREFIX}reversing anchor order")
    with torch.no_grad():
        head.anchors[:] = ordered / stride
    return True


def check_anchors(dataset: Any, head: Any, thr: float = 4.0, imgsz: int = 640, rng: Any = None) -> AnchorCheck | None:
    """Check the head's anchors against `dataset.shapes`/`dataset.labels`; refit them when BPR < 0.98.

    Label sizes get a random 0.9-1.1 scale per image, drawn with `rng.uniform` (default: numpy's global
    RNG, so `np.random.seed(0)` reproduces YOLOv5). New anchors are kept only if their BPR is higher; they
    are written into `head.anchors` (grid units, stride order), so the model's state_dict carries them.
    """
    if not getattr(head, "has_anchors", True):  # the head contract (models/head_protocol.py)
        LOGGER.info(f"{PREFIX}skipped: the head is anchor-free")
        return None
    rng = np.random if rng is None else rng
    n_img = len(dataset.shapes)
    scale = rng.uniform(0.9, 1.1, size=(n_img, 1))
    wh = label_wh(dataset.shapes, dataset.labels, imgsz, scale)
    stride = head.stride.to(head.anchors.device).view(-1, 1, 1)
    bpr, aat = anchor_metrics(wh, (head.anchors * stride).detach().cpu().view(-1, 2), thr)
    msg = f"{PREFIX}{aat:.2f} anchors/target, {bpr:.3f} Best Possible Recall (BPR). "
    if bpr > BPR_REFIT:
        LOGGER.info(f"{msg}Current anchors are a good fit to dataset")
        return AnchorCheck(bpr, aat, False)
    LOGGER.info(f"{msg}Anchors are a poor fit to dataset, attempting to improve...")
    na = head.anchors.numel() // 2
    new = kmean_anchors(dataset, n=na, img_size=imgsz, thr=thr, gen=1000, verbose=False)
    new_bpr, new_aat = anchor_metrics(wh, new, thr)
    if new_bpr <= bpr:
        LOGGER.info(f"{PREFIX}Done (original anchors better than new anchors, proceeding with original)")
        return AnchorCheck(bpr, aat, False)
    pixels = torch.tensor(new, device=head.anchors.device).type_as(head.anchors).view_as(head.anchors)
    with torch.no_grad():
        head.anchors[:] = order_anchors(pixels, stride) / stride
    LOGGER.info(f"{PREFIX}Done (optional: update the model YAML to use these anchors in the future)")
    return AnchorCheck(new_bpr, new_aat, True)


def anchor_fitness(anchors: np.ndarray, wh: np.ndarray, thr: float = 4.0) -> float:
    """GA fitness of pixel anchors (k, 2): mean over labels of best x, counted only where x > 1/thr."""
    best = _ratio_metric(torch.as_tensor(wh, dtype=torch.float32),
                         torch.as_tensor(np.asarray(anchors), dtype=torch.float32)).max(1)[0]
    return float((best * (best > 1 / thr).float()).mean())


def _batch_fitness(log_wh: np.ndarray, cands: np.ndarray, thr: float) -> np.ndarray:
    """Fitness of B candidate anchor sets (B, k, 2) for log label sizes (2, n), as exp(-max |log wh - log k|).

    Laid out (B, k, n_labels) so every reduction runs over whole contiguous rows of labels.
    """
    log_k = np.log(cands)
    dist = np.maximum(np.abs(log_k[..., 0, None] - log_wh[0]), np.abs(log_k[..., 1, None] - log_wh[1]))
    best = np.exp(-dist.min(1))  # (B, n_labels)
    return (best * (best > 1 / thr)).mean(1)


def _mutations(rng: np.random.Generator, count: int, shape: tuple[int, int]) -> np.ndarray:
    """`count` multiplicative mutations: each gene changes with prob 0.9 by a N(0, 0.1*u) factor, u~U(0,1)."""
    v = np.ones((count, *shape))
    todo = np.arange(count)
    while len(todo):  # redraw any mutation that changes nothing
        m = len(todo)
        hit = rng.random((m, *shape)) < MUTATION_PROB
        v[todo] = (hit * rng.random((m, 1, 1)) * rng.standard_normal((m, *shape)) * MUTATION_SIGMA + 1
                   ).clip(0.3, 3.0)
        todo = todo[(v[todo] == 1).reshape(m, -1).all(1)]
    return v


def _evolve(k: np.ndarray, wh: np.ndarray, thr: float, gen: int, rng: np.random.Generator) -> np.ndarray:
    """Genetic evolution: mutate the best anchors, keep a mutant when its fitness is higher.

    Same process as YOLOv5's sequential loop, vectorised: a batch of mutants of the current best is
    evaluated at once and the first improving one is accepted. The mutants after it are thrown away and
    not counted as generations, so the search is statistically the sequential one, only faster.
    """
    log_wh = np.ascontiguousarray(np.log(wh.astype(np.float32)).T)  # (2, n_labels)
    f = float(_batch_fitness(log_wh, k[None].astype(np.float32), thr)[0])
    done, since_improve = 0, 0
    with tqdm(total=gen, desc=f"{PREFIX}Evolving anchors with Genetic Algorithm", leave=False) as pbar:
        while done < gen:
            size = int(min(gen - done, max(4, min(32, since_improve))))
            cands = (k[None] * _mutations(rng, size, k.shape)).clip(min=2.0)
            fit = _batch_fitness(log_wh, cands.astype(np.float32), thr)
            better = np.flatnonzero(fit > f)
            used = int(better[0]) + 1 if len(better) else size
            if len(better):
                f, k = float(fit[better[0]]), cands[better[0]]
                since_improve = 0
                pbar.set_description(f"{PREFIX}Evolving anchors with Genetic Algorithm: fitness = {f:.4f}",
                                     refresh=False)
            else:
                since_improve += size
            done += used
            pbar.update(used)
    return k


def _sort_by_area(k: np.ndarray) -> np.ndarray:
    return k[np.argsort(k.prod(1))]


def _summary(k: np.ndarray, wh0: np.ndarray, thr: float, img_size: int) -> str:
    x = _ratio_metric(torch.as_tensor(wh0, dtype=torch.float32), torch.as_tensor(k, dtype=torch.float32))
    best = x.max(1)[0]
    bpr, aat = float((best > 1 / thr).float().mean()), float((x > 1 / thr).float().mean()) * len(k)
    anchors = ", ".join(f"{round(w)},{round(h)}" for w, h in k)
    return (f"{PREFIX}thr={1 / thr:.2f}: {bpr:.4f} best possible recall, {aat:.2f} anchors past thr\n"
            f"{PREFIX}n={len(k)}, img_size={img_size}, metric_all={float(x.mean()):.3f}/"
            f"{float(best.mean()):.3f}-mean/best, past_thr={float(x[x > 1 / thr].mean()):.3f}-mean: {anchors}")


def _default_rng(rng: np.random.Generator | None) -> np.random.Generator:
    """A Generator seeded from numpy's global RNG unless one is given (so np.random.seed reproduces)."""
    return rng if rng is not None else np.random.default_rng(np.random.randint(0, 2**31 - 1))


def kmean_anchors(dataset_or_yaml: Any, n: int = 9, img_size: int = 640, thr: float = 4.0, gen: int = 1000,
                  verbose: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
    """Anchors (n, 2) in pixels, sorted by area: k-means on whitened label sizes, then `gen` GA generations.

    `dataset_or_yaml`: an object with `.shapes` (n_img, 2 w,h) and `.labels` (list of (n, 5)), or a data
    YAML path whose train split is loaded.
    """
    from scipy.cluster.vq import kmeans

    if n < 1 or gen < 0 or thr <= 1:
        raise ValueError(f"need n >= 1, gen >= 0 and thr > 1, got n={n}, gen={gen}, thr={thr}")
    dataset = dataset_labels(dataset_or_yaml) if isinstance(dataset_or_yaml, (str, Path)) \
        else dataset_or_yaml
    rng = _default_rng(rng)
    wh0 = label_wh(dataset.shapes, dataset.labels, img_size)
    tiny = int((wh0 < 3.0).any(1).sum())
    if tiny:
        LOGGER.warning(f"{PREFIX}Extremely small objects found: {tiny} of {len(wh0)} labels are <3 pixels in size")
    wh = wh0[(wh0 >= 2.0).any(1)].astype(np.float32)  # drop labels under 2 px on both sides

    LOGGER.info(f"{PREFIX}Running kmeans for {n} anchors on {len(wh)} points...")
    k = None
    if n <= len(wh):
        sigma = wh.std(0)
        centres = kmeans(wh / sigma, n, iter=30, rng=rng)[0] * sigma
        k = centres if len(centres) == n else None  # k-means may merge clusters of too-similar sizes
    if k is None:
        LOGGER.warning(f"{PREFIX}switching strategies from kmeans to random init")
        k = np.sort(rng.random(n * 2)).reshape(n, 2) * img_size
    k = _evolve(_sort_by_area(k.astype(np.float64)), wh, thr, gen, rng)
    k = _sort_by_area(k)
    if verbose:
        LOGGER.info(_summary(k, wh0, thr, img_size))
    return k.astype(np.float32)


def dataset_labels(yaml_path: str | Path, split: str = "train") -> SimpleNamespace:
    """`.shapes` (n_img, 2 w,h) and `.labels` (list of (n, 5)) of a data YAML split, through the project's loader."""
    from utils.downloads import ensure_dataset
    from utils.data.dataloaders import LoadImagesAndLabels

    sources = ensure_dataset(yaml_path).sources(split)
    ds = LoadImagesAndLabels(sources, 640, augment=False, rect=False)
    return SimpleNamespace(shapes=np.asarray(ds.shapes, dtype=np.float64), labels=ds.labels)


def anchors_yaml(anchors: np.ndarray, nl: int = 3) -> str:
    """Anchors formatted as a model YAML `anchors:` block, one row per level."""
    k = np.asarray(anchors).reshape(nl, -1, 2)
    rows = ["anchors:"]
    for i, level in enumerate(k):
        rows.append(f"  - [{', '.join(f'{round(w)},{round(h)}' for w, h in level)}]  # level {i}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """CLI: print k-means + GA anchors for a data YAML."""
    parser = argparse.ArgumentParser(description="Compute anchors for a dataset (k-means + genetic evolution)")
    parser.add_argument("--data", required=True, help="data YAML")
    parser.add_argument("--img", type=int, default=640, help="training image size (pixels)")
    parser.add_argument("--n", type=int, default=9, help="number of anchors")
    parser.add_argument("--nl", type=int, default=3, help="number of detection levels (rows printed)")
    parser.add_argument("--thr", type=float, default=4.0, help="anchor_t: max width/height ratio")
    parser.add_argument("--gen", type=int, default=1000, help="generations of evolution")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    args = parser.parse_args(argv)
    if args.n % args.nl:
        parser.error(f"--n {args.n} is not a multiple of --nl {args.nl}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(args.seed)
    k = kmean_anchors(args.data, n=args.n, img_size=args.img, thr=args.thr, gen=args.gen, rng=rng)
    print(anchors_yaml(k, args.nl))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
    from utils.cli import run_main

    run_main(main)
