"""COCO-json detections and pycocotools evaluation for `val.py --save-json`.

Our predictions are per image (n, 6) [x1, y1, x2, y2, conf, cls] in original-image pixels with class
indices 0..nc-1. COCO results need the json's `image_id`, its `category_id` and `bbox` = [x, y, w, h]
(top-left corner). Boxes are rounded to 3 decimals and scores to 5, as YOLOv5 writes them.
"""
from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

# COCO 2017 uses category ids 1..90 with these ten left unused; the 80 others, in order, are the 80 classes.
COCO91_UNUSED = frozenset({12, 26, 29, 30, 45, 66, 68, 69, 71, 83})
COCO80_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)


def coco80_to_coco91() -> list[int]:
    """Category id (1..90) of each of the 80 COCO classes, by class index."""
    return [i for i in range(1, 91) if i not in COCO91_UNUSED]


def load_json(path: Path | str) -> dict:
    """Read a COCO annotation json, naming the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation json not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid json ({e})") from e
    for key in ("images", "categories"):
        if key not in data:
            raise ValueError(f"{path}: missing '{key}' (not a COCO annotation file)")
    return data


def category_ids(names: Sequence[str] | dict, categories: Sequence[dict] = ()) -> list[int]:
    """json category id of each of our classes: by name among `categories`, else the COCO-80 mapping."""
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    by_name = {c["name"]: int(c["id"]) for c in categories}
    if all(n in by_name for n in names):
        return [by_name[n] for n in names]
    if tuple(names) == COCO80_NAMES:
        return coco80_to_coco91()
    missing = [n for n in names if n not in by_name]
    raise ValueError(f"classes {missing[:10]} are not among the json's categories and the class names are not "
                     "COCO's 80, so no category_id can be given to them")


def image_ids(anno: dict) -> dict[str, int]:
    """File name (without folders) -> image id, from a COCO annotation dict."""
    return {Path(im["file_name"]).name: int(im["id"]) for im in anno["images"]}


def image_id_for(path: Path | str, ids: dict[str, int]) -> int:
    """The json image id of an image file, matched by file name."""
    name = Path(path).name
    if name not in ids:
        raise KeyError(f"image {path} is not in the COCO json's images (matched by file name '{name}')")
    return ids[name]


def to_coco_results(pred: torch.Tensor | np.ndarray, image_id: int, cat_ids: Sequence[int]) -> list[dict]:
    """(n, 6) [x1, y1, x2, y2, conf, cls] in original pixels -> COCO result dicts for one image."""
    pred = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    if pred.ndim != 2 or (len(pred) and pred.shape[1] < 6):
        raise ValueError(f"predictions for image {image_id} must be (n, 6), got {pred.shape}")
    xywh = pred[:, :4].astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    cls = pred[:, 5].astype(int)
    if len(cls) and (cls.min() < 0 or cls.max() >= len(cat_ids)):
        raise ValueError(f"image {image_id}: class index {cls.max()} outside the {len(cat_ids)} known classes")
    return [{"image_id": image_id, "category_id": cat_ids[c], "bbox": [round(float(v), 3) for v in box],
             "score": round(float(s), 5)} for box, s, c in zip(xywh, pred[:, 4], cls)]


def save_results(results: list[dict], path: Path | str) -> Path:
    """Write COCO result dicts as json; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))
    return path


def evaluate_coco(anno_json: Path | str, pred_json: Path | str, img_ids: Sequence[int] | None = None,
                  verbose: bool = False) -> tuple[float, float]:
    """pycocotools bbox evaluation -> (mAP@0.5:0.95, mAP@0.5), over `img_ids` (default: every json image)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    preds = json.loads(Path(pred_json).read_text())
    if not preds:
        return 0.0, 0.0
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        anno = COCO(str(anno_json))
        known = set(anno.getImgIds())
        unknown = {p["image_id"] for p in preds} - known
        if unknown:
            raise ValueError(f"{pred_json}: image ids {sorted(unknown)[:10]} are not in {anno_json}")
        evaluator = COCOeval(anno, anno.loadRes(preds), "bbox")
        evaluator.params.imgIds = sorted(known if img_ids is None else img_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0]), float(evaluator.stats[1])
