"""Validation of a detector on a dataset: P, R, mAP50, mAP50-95 as YOLOv5's val.py computes them (val.py is the
command line; training validates through `validate` too)."""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from utils.cli import UserFileNotFoundError, UserValueError
from utils.downloads import ensure_dataset
from utils.evaluator import EvalResult, Evaluator
from models.backend_export import detections, with_thresholds
from utils.nms import head_nms_kwargs
from utils.paths import increment_path
from utils.validation.options import TASKS, ValOptions

LOGGER = logging.getLogger("yolo.val")
HEADER = ("%22s" + "%11s" * 6) % ("Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95")
ROW = "%22s" + "%11i" * 2 + "%11.3g" * 4


class Timer:
    """Accumulated seconds of a code block (synchronising CUDA for honest timings)."""

    def __init__(self, device: torch.device) -> None:
        self.t, self.cuda = 0.0, device.type == "cuda"

    def __enter__(self) -> "Timer":
        self.start = self._now()
        return self

    def __exit__(self, *exc) -> None:
        self.t += self._now() - self.start

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def find_coco_json(data) -> Path | None:
    """The COCO annotation json of a dataset: `coco_json:` in the YAML, else annotations/instances_*.json."""
    raw = getattr(data, "raw", data if isinstance(data, dict) else {})
    root = Path(data["path"])
    if raw.get("coco_json"):
        p = Path(raw["coco_json"])
        p = p if p.is_absolute() else root / p
        if not p.is_file():
            raise UserFileNotFoundError(f"data YAML key 'coco_json': file not found: {p}")
        return p
    found = sorted((root / "annotations").glob("instances_*.json"))
    return found[0] if found else None


def _json_writer(anno_json: Path | None, names: list[str]):
    """(image id of a path, category id of each class) for COCO-json output."""
    from utils.coco_eval import COCO80_NAMES, category_ids, coco80_to_coco91, image_id_for, image_ids, load_json

    if anno_json is not None:
        anno = load_json(anno_json)
        ids = image_ids(anno)
        return (lambda p: image_id_for(p, ids)), category_ids(names, anno["categories"])
    cats = coco80_to_coco91() if tuple(names) == COCO80_NAMES else list(range(len(names)))
    return (lambda p: int(Path(p).stem) if Path(p).stem.isnumeric() else Path(p).stem), cats


def _load(weights, device: str, half: bool, cfg=None, darknet_mode: bool = False, runtime=None, compile=False,
          bf16=False):
    """Backend for the CLI path: fused PyTorch model or an export (static exports fix batch and shape)."""
    from models.backends import load_backend
    from utils.torch_utils import select_device

    dev = select_device(device)
    half = half and dev.type == "cuda"
    if weights is None:
        raise ValueError("val.py needs --weights (or a model when called from training)")
    return load_backend(weights, dev, fuse=True, half=half, cfg=cfg, darknet_mode=darknet_mode, runtime=runtime,
                        compile=compile, bf16=bf16), dev


def _dataloader(data, task: str, imgsz: int, batch_size: int, stride: int, single_cls: bool, workers: int,
                rect: bool):
    from utils.data.dataloaders import create_dataloader

    split = "val" if task in ("speed", "study") else task
    if data[split] is None:
        raise KeyError(f"{getattr(data, 'yaml_file', 'data')}: no '{split}' split for --task {task}")
    pad = 0.0 if task == "speed" else 0.5
    rect = rect and task != "speed"
    return create_dataloader(data[split], imgsz, batch_size, stride, single_cls=single_cls, pad=pad, rect=rect,
                             workers=workers, prefix=f"{task}: ", nc=len(data["names"]))[0]


def print_results(res: EvalResult, names: list[str], verbose: bool, images_per_class: np.ndarray) -> None:
    """YOLOv5's table: `all` row, then one row per class with labels when verbose."""
    LOGGER.info(HEADER)
    LOGGER.info(ROW % ("all", res.seen, res.nt.sum(), res.mp, res.mr, res.map50, res.map))
    if res.nt.sum() == 0:
        LOGGER.warning("WARNING no labels found in the set, cannot compute metrics without labels")
    if verbose:
        for row in res.per_class:
            c = row["class"]
            LOGGER.info(ROW % (row["name"], images_per_class[c], res.nt[c], row["P"], row["R"], row["AP50"],
                               row["AP50_95"]))


def _batch_step(backend, im, targets, augment, compute_loss, nms_kw, timers, loss, paths_shapes=None):
    """Pre-process, forward, loss and NMS of one batch -> NMS output, targets in pixels."""
    dt_pre, dt_inf, dt_nms = timers
    with dt_pre:
        im = im.to(backend.device, non_blocking=True)
        im = (im.half() if backend.fp16 else im.float()) / 255
        targets = targets.to(backend.device)
    if backend.detect_image is not None:
        return _end_to_end_step(backend, im, targets, paths_shapes, nms_kw, dt_inf)
    with dt_inf:
        out = backend(im, augment=augment)
        preds, raw = out if isinstance(out, (tuple, list)) else (out, None)
    if compute_loss is not None and raw is not None:
        loss += compute_loss([x.float() for x in raw], targets)[1]
    h, w = im.shape[2:]
    targets[:, 2:] *= torch.tensor((w, h, w, h), device=targets.device)
    with dt_nms:
        out = detections(backend, preds, hw=(h, w), **nms_kw)
    return out, targets, (h, w)


def _end_to_end_step(backend, im, targets, paths_shapes, nms_kw, timer):
    """A backend with its own pipeline (Darknet mode) on each original image; its detections are mapped into the
    batch's letterboxed frame, so the evaluator scales them back to the original pixels like any other."""
    import cv2

    h, w = im.shape[2:]
    targets[:, 2:] *= torch.tensor((w, h, w, h), device=targets.device)
    out = []
    with timer:
        for path, (_, ((gain, _), (pw, ph))) in zip(*paths_shapes):  # the inverse of utils.boxes.scale_boxes
            im0 = cv2.imread(str(path))
            if im0 is None:
                raise UserFileNotFoundError(f"{path}: cannot read the image")
            det = backend.detect_image(im0, nms_kw["conf_thres"], nms_kw["iou_thres"])[:nms_kw["max_det"]]
            det[:, :4] = det[:, :4] * gain + torch.tensor((pw, ph, pw, ph))
            out.append(det.to(targets.device))
    return out, targets, (h, w)


def _images_per_class(ev: Evaluator, nc: int) -> np.ndarray:
    counts = np.zeros(nc, dtype=int)
    for *_, tcls in ev.stats:
        counts[np.unique(tcls.numpy().astype(int))] += 1
    return counts


def _coco_eval(ev: Evaluator, save_dir: Path, stem: str, anno_json: Path | None) -> dict | None:
    """Write <stem>_predictions.json; with an annotation json, pycocotools mAP over the validated images."""
    from utils.coco_eval import evaluate_coco, save_results

    pred_json = save_results(ev.json_results, save_dir / f"{stem}_predictions.json")
    LOGGER.info(f"Saved {len(ev.json_results)} COCO detections to {pred_json}")
    if anno_json is None:
        return None
    m, m50 = evaluate_coco(anno_json, pred_json, img_ids=sorted(ev.json_image_ids))
    LOGGER.info(f"pycocotools ({anno_json.name}): mAP50 {m50:.4f}, mAP50-95 {m:.4f}")
    return {"annotations": str(anno_json), "mAP50": m50, "mAP50_95": m}


def _backend_for(model, weights, device, half, cfg=None, darknet_mode=False, runtime=None, compile=False,
                 bf16=False):
    """(backend, model was in training mode) for a given model (training) or weights (CLI)."""
    if model is None:
        return _load(weights, device, half, cfg, darknet_mode, runtime, compile, bf16)[0], False
    from models.backends import Backend

    p = next(model.parameters())
    was_training = model.training
    model.eval()
    names = list(getattr(model, "names", []) or [])
    backend = Backend(lambda im, augment=False: model(im, augment=augment) if augment else model(im), names,
                      int(max(model.stride.max(), 32)) if hasattr(model, "stride") else 32, "pt", p.device,
                      fp16=p.dtype == torch.float16, model=model, has_objectness=model.detect.has_objectness,
                      test_cfg=getattr(model.detect, "test_cfg", None),
                      postprocess=getattr(model.detect, "postprocess", None))
    return backend, was_training


def _fit_backend(backend, batch_size: int, imgsz: int) -> tuple[int, int]:
    """Batch size and image size that the backend accepts (static exports fix both)."""
    if not backend.dynamic:
        if backend.batch_size != batch_size:
            LOGGER.info(f"{backend.kind} export has a fixed batch of {backend.batch_size}: using it")
        return backend.batch_size, max(backend.imgsz)
    return batch_size, math.ceil(imgsz / backend.stride) * backend.stride


def _write_metrics(save_dir: Path, res: EvalResult, names, speeds, coco, weights, data) -> Path:
    out = res.to_dict(names)
    out["speed_ms_per_image"] = dict(zip(("pre-process", "inference", "NMS"), speeds))
    out["weights"] = str(weights) if weights else None
    out["data"] = str(getattr(data, "yaml_file", "")) or None
    if coco:
        out["pycocotools"] = coco
    path = save_dir / "metrics.json"
    path.write_text(json.dumps(out, indent=1))
    return path


@torch.inference_mode()
def validate(data, opts: ValOptions | None = None, *, model=None, dataloader=None, save_dir=None, plots: bool = True,
             compute_loss=None, names=None, **options):
    """Validate -> ((P, R, mAP50, mAP50-95, 3 val losses), maps (nc,), (pre, inf, nms) ms/image).

    `opts` (default ValOptions()) with `options` replacing single fields (e.g. weights=..., imgsz=...). With
    `model` (training) the model is used as it is (device, dtype, no fusing); `compute_loss` gives the val losses
    from the raw outputs. Otherwise `opts.weights` is loaded (fused), and results go to project/name.
    """
    o = (opts or ValOptions()).replace(**options)
    if o.task not in TASKS:
        raise UserValueError(f"task must be one of {TASKS}, got {o.task!r}")
    data = ensure_dataset(data)
    training = model is not None
    backend, was_training = _backend_for(model, o.weights, o.device, o.half, o.cfg, o.darknet_mode, o.runtime,
                                         o.compile, o.bf16)
    with_thresholds(backend, o.conf_thres, o.iou_thres, multi_label=True)
    names = list(names or data["names"] or backend.names)
    nc = 1 if o.single_cls else len(names)
    save_dir = Path(save_dir) if save_dir else increment_path(Path(o.project) / o.name, exist_ok=o.exist_ok)
    (save_dir / "labels" if o.save_txt else save_dir).mkdir(parents=True, exist_ok=True)
    batch_size, imgsz = o.batch_size, o.imgsz
    if dataloader is None:
        batch_size, imgsz = _fit_backend(backend, batch_size, imgsz)
        dataloader = _dataloader(data, o.task, imgsz, batch_size, backend.stride, o.single_cls, o.workers,
                                 rect=backend.dynamic)
    anno_json = find_coco_json(data) if o.save_json else None
    json_ids, cat_ids = _json_writer(anno_json, names) if o.save_json else (None, None)
    ev = Evaluator(nc, names, o.single_cls, confusion=plots, txt_dir=save_dir / "labels" if o.save_txt else None,
                   save_conf=o.save_conf, json_ids=json_ids, cat_ids=cat_ids)
    # no NMS time limit: on a busy CPU it left images without detections and changed the figures
    nms_kw = dict(conf_thres=o.conf_thres, iou_thres=o.iou_thres, multi_label=True, agnostic=o.single_cls,
                  max_det=o.max_det, time_limit=math.inf, has_objectness=backend.has_objectness)
    nms_kw = head_nms_kwargs(backend.test_cfg, nms_kw, val=True)  # a head's own test settings (mmdet families)
    timers = tuple(Timer(backend.device) for _ in range(3))
    loss = torch.zeros(3, device=backend.device)
    for im, targets, paths, shapes in tqdm(dataloader, desc=HEADER, bar_format="{l_bar}{bar:10}{r_bar}"):
        out, targets, hw = _batch_step(backend, im, targets, o.augment, compute_loss, nms_kw, timers, loss,
                                       (paths, shapes))
        ev.update(out, targets, hw, paths, shapes)
    res = ev.result(plot=plots, save_dir=save_dir)
    print_results(res, names, o.verbose or (not training and nc < 50), _images_per_class(ev, nc))
    speeds = tuple(t.t / max(ev.seen, 1) * 1e3 for t in timers)
    if not training:
        LOGGER.info("Speed: %.1fms pre-process, %.1fms inference, %.1fms NMS per image at shape %s"
                    % (*speeds, (batch_size, 3, imgsz, imgsz)))
    if plots and ev.confusion is not None:
        ev.confusion.plot(save_dir=save_dir, names=names)
    coco = _coco_eval(ev, save_dir, Path(str(o.weights or "model")).stem, anno_json) if o.save_json else None
    _write_metrics(save_dir, res, names, speeds, coco, o.weights, data)
    if o.save_txt:
        LOGGER.info(f"{len(list((save_dir / 'labels').glob('*.txt')))} labels saved to {save_dir / 'labels'}")
    if was_training:
        backend.model.train()
    val_loss = (loss.cpu() / max(len(dataloader), 1)).tolist()
    return (res.mp, res.mr, res.map50, res.map, *val_loss), res.maps, speeds
