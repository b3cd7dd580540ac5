"""Validate a detector on a dataset: P, R, mAP50, mAP50-95 as YOLOv5's val.py computes them.

    python val.py --weights yolov5n.pt --data coco128.yaml --img 640 --batch-size 32
    python val.py --task speed --weights yolov5n.pt yolov5s.pt --data coco128.yaml --batch 1   # timings
    python val.py --task study --weights yolov5n.pt --data coco128.yaml    # mAP and speed for sizes 256..1536

Rect batches (letterbox to the per-batch shape, pad 0.5), conf 0.001, IoU 0.6, multi-label NMS, max 300
detections, matching in original-image pixels. Writes runs/val/exp<N>/metrics.json (overall and per class),
curves and the confusion matrix, and with --save-json COCO detections evaluated by pycocotools.
--task speed (per weights: conf 0.25, IoU 0.45, square batches, no plots, timings reported) and --task study
(per weights and --study-sizes: study_<data>_<weights>.txt in YOLOv5's format, study.png) as YOLOv5.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from utils.cli import UserFileNotFoundError, UserValueError
from utils.evaluator import EvalResult, Evaluator
from models.backend_export import detections, with_thresholds
from utils.paths import increment_path

LOGGER = logging.getLogger("yolo.val")
TASKS = ("val", "test", "speed", "study")
STUDY_SIZES = tuple(range(256, 1536 + 128, 128))
HEADER = ("%22s" + "%11s" * 6) % ("Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95")
ROW = "%22s" + "%11i" * 2 + "%11.3g" * 4


@dataclass
class ValOptions:
    """Command-line options of val.py (names as `run()` takes them)."""
    data: str = "data/shapes.yaml"
    weights: list[str] | str | None = None  # several only for --task speed / study
    batch_size: int = 32
    imgsz: int = 640
    conf_thres: float = 0.001
    iou_thres: float = 0.6
    max_det: int = 300
    task: str = "val"
    device: str = ""
    workers: int = 2
    single_cls: bool = False
    augment: bool = False
    verbose: bool = False
    save_txt: bool = False
    save_conf: bool = False
    save_json: bool = False
    project: str = "runs/val"
    name: str = "exp"
    exist_ok: bool = False
    half: bool = False
    runtime: str | None = None  # --backend: ONNX Runtime execution provider / OpenVINO device
    compile: bool = False  # PyTorch weights: torch.compile (inductor, frozen)
    bf16: bool = False  # PyTorch weights on CPU: bf16 autocast (AVX-512 BF16 / AMX)
    study_sizes: list[int] | None = None  # --task study image sizes (default 256..1536 step 128)


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


def _data_config(data):
    """DataConfig from a path (the dataset downloaded when absent), or the DataConfig / dict given (training
    passes its own)."""
    from utils.downloads import ensure_dataset

    return ensure_dataset(data)


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


def _load(weights, device: str, half: bool, batch_size: int, runtime=None, compile=False, bf16=False):
    """Backend for the CLI path: fused PyTorch model or an export (static exports fix batch and shape)."""
    from models.backends import load_backend
    from utils.torch_utils import select_device

    dev = select_device(device)
    half = half and dev.type == "cuda"
    if weights is None:
        raise ValueError("val.py needs --weights (or a model when called from training)")
    return load_backend(weights, dev, fuse=True, half=half, runtime=runtime, compile=compile, bf16=bf16), dev


def _dataloader(data, task: str, imgsz: int, batch_size: int, stride: int, single_cls: bool, workers: int,
                rect: bool):
    from utils.dataloaders import create_dataloader

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


def _batch_step(backend, im, targets, augment, compute_loss, nms_kw, timers, loss):
    """Pre-process, forward, loss and NMS of one batch -> NMS output, targets in pixels."""
    dt_pre, dt_inf, dt_nms = timers
    with dt_pre:
        im = im.to(backend.device, non_blocking=True)
        im = (im.half() if backend.fp16 else im.float()) / 255
        targets = targets.to(backend.device)
    with dt_inf:
        out = backend(im, augment=augment)
        preds, raw = out if isinstance(out, (tuple, list)) else (out, None)
    if compute_loss is not None and raw is not None:
        loss += compute_loss([x.float() for x in raw], targets)[1]
    h, w = im.shape[2:]
    targets[:, 2:] *= torch.tensor((w, h, w, h), device=targets.device)
    with dt_nms:
        out = detections(backend, preds, **nms_kw)
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


@torch.inference_mode()
def run(data, weights=None, batch_size=32, imgsz=640, conf_thres=0.001, iou_thres=0.6, max_det=300, task="val",
        device="", workers=2, single_cls=False, augment=False, verbose=False, save_txt=False, save_conf=False,
        save_json=False, project="runs/val", name="exp", exist_ok=False, half=False, model=None,
        dataloader=None, save_dir=None, plots=True, compute_loss=None, names=None, runtime=None, compile=False,
        bf16=False):
    """Validate -> ((P, R, mAP50, mAP50-95, box_loss, obj_loss, cls_loss), maps (nc,), (pre, inf, nms) ms/image).

    With `model` (training) the model is used as it is (device, dtype, no fusing); `compute_loss` gives the
    val losses from the raw outputs. Otherwise `weights` is loaded (fused), and results go to project/name.
    """
    if task not in TASKS:
        raise UserValueError(f"task must be one of {TASKS}, got {task!r}")
    data = _data_config(data)
    training = model is not None
    backend, was_training = _backend_for(model, weights, device, half, batch_size, runtime, compile, bf16)
    with_thresholds(backend, conf_thres, iou_thres, multi_label=True)
    names = list(names or data["names"] or backend.names)
    nc = 1 if single_cls else len(names)
    save_dir = Path(save_dir) if save_dir else increment_path(Path(project) / name, exist_ok=exist_ok)
    (save_dir / "labels" if save_txt else save_dir).mkdir(parents=True, exist_ok=True)
    if dataloader is None:
        batch_size, imgsz = _fit_backend(backend, batch_size, imgsz)
        dataloader = _dataloader(data, task, imgsz, batch_size, backend.stride, single_cls, workers,
                                 rect=backend.dynamic)
    anno_json = find_coco_json(data) if save_json else None
    json_ids, cat_ids = _json_writer(anno_json, names) if save_json else (None, None)
    ev = Evaluator(nc, names, single_cls, confusion=plots, txt_dir=save_dir / "labels" if save_txt else None,
                   save_conf=save_conf, json_ids=json_ids, cat_ids=cat_ids)
    # no NMS time limit: on a busy CPU it left images without detections and changed the figures
    nms_kw = dict(conf_thres=conf_thres, iou_thres=iou_thres, multi_label=True, agnostic=single_cls,
                  max_det=max_det, time_limit=math.inf, has_objectness=backend.has_objectness)
    timers = tuple(Timer(backend.device) for _ in range(3))
    loss = torch.zeros(3, device=backend.device)
    shape = None
    for im, targets, paths, shapes in tqdm(dataloader, desc=HEADER, bar_format="{l_bar}{bar:10}{r_bar}"):
        out, targets, hw = _batch_step(backend, im, targets, augment, compute_loss, nms_kw, timers, loss)
        shape = shape or tuple(im.shape)
        ev.update(out, targets, hw, paths, shapes)
    res = ev.result(plot=plots, save_dir=save_dir)
    print_results(res, names, verbose or (not training and nc < 50), _images_per_class(ev, nc))
    speeds = tuple(t.t / max(ev.seen, 1) * 1e3 for t in timers)
    if not training:
        LOGGER.info("Speed: %.1fms pre-process, %.1fms inference, %.1fms NMS per image at shape %s"
                    % (*speeds, (batch_size, 3, imgsz, imgsz)))
    if plots and ev.confusion is not None:
        ev.confusion.plot(save_dir=save_dir, names=names)
    coco = _coco_eval(ev, save_dir, Path(str(weights or "model")).stem, anno_json) if save_json else None
    _write_metrics(save_dir, res, names, speeds, coco, weights, data)
    if save_txt:
        LOGGER.info(f"{len(list((save_dir / 'labels').glob('*.txt')))} labels saved to {save_dir / 'labels'}")
    if was_training:
        backend.model.train()
    n_batches = max(len(dataloader), 1)
    val_loss = (loss.cpu() / n_batches).tolist()
    return (res.mp, res.mr, res.map50, res.map, *val_loss), res.maps, speeds


def _backend_for(model, weights, device, half, batch_size, runtime=None, compile=False, bf16=False):
    """(backend, model was in training mode) for a given model (training) or weights (CLI)."""
    if model is None:
        return _load(weights, device, half, batch_size, runtime, compile, bf16)[0], False
    from models.backends import Backend

    p = next(model.parameters())
    was_training = model.training
    model.eval()
    names = list(getattr(model, "names", []) or [])
    backend = Backend(lambda im, augment=False: model(im, augment=augment) if augment else model(im), names,
                      int(max(model.stride.max(), 32)) if hasattr(model, "stride") else 32, "pt", p.device,
                      fp16=p.dtype == torch.float16, model=model, has_objectness=model.detect.has_objectness)
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


def parse_opt(argv: list[str] | None = None) -> ValOptions:
    """argparse -> ValOptions (YOLOv5's flag names, with --img / --batch as aliases)."""
    d = ValOptions()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=d.data, help="data YAML")
    p.add_argument("--weights", nargs="+", default=d.weights,
                   help=".pt (ours or official), .torchscript or .onnx; several for --task speed / study")
    p.add_argument("--batch-size", "--batch", type=int, default=d.batch_size)
    p.add_argument("--imgsz", "--img", "--img-size", type=int, default=d.imgsz, help="inference size (pixels)")
    p.add_argument("--conf-thres", type=float, default=d.conf_thres)
    p.add_argument("--iou-thres", type=float, default=d.iou_thres)
    p.add_argument("--max-det", type=int, default=d.max_det)
    p.add_argument("--task", default=d.task, choices=TASKS)
    p.add_argument("--device", default=d.device, help="cuda device, i.e. 0 or cpu")
    p.add_argument("--workers", type=int, default=d.workers, help="dataloader workers")
    for flag in ("single-cls", "augment", "verbose", "save-txt", "save-conf", "save-json", "exist-ok", "half"):
        p.add_argument(f"--{flag}", action="store_true")
    p.add_argument("--backend", dest="runtime", default=d.runtime,
                   help="ONNX Runtime execution provider (cpu, cuda, openvino, ...) / OpenVINO device (CPU, GPU, AUTO)")
    p.add_argument("--compile", action="store_true", help="PyTorch weights: torch.compile (inductor, frozen)")
    p.add_argument("--bf16", action="store_true", help="PyTorch weights on CPU: bf16 autocast (AVX-512 BF16 / AMX)")
    p.add_argument("--project", default=d.project)
    p.add_argument("--name", default=d.name)
    p.add_argument("--study-sizes", nargs="+", type=int, default=d.study_sizes,
                   help=f"image sizes of --task study (default {STUDY_SIZES[0]}..{STUDY_SIZES[-1]} step 128)")
    return ValOptions(**vars(p.parse_args(argv)))


def _weights_list(weights) -> list:
    return list(weights) if isinstance(weights, (list, tuple)) else [weights]


def _run_kwargs(opt: ValOptions) -> dict:
    kw = asdict(opt)
    kw.pop("study_sizes")
    return kw


def speed(opt: ValOptions) -> list[tuple]:
    """YOLOv5's --task speed: each weights at conf 0.25, IoU 0.45, no plots and no json; timings logged."""
    return [run(**_run_kwargs(opt) | {"weights": w, "conf_thres": 0.25, "iou_thres": 0.45, "save_json": False,
                                      "half": True, "plots": False}) for w in _weights_list(opt.weights)]


def study(opt: ValOptions) -> Path:
    """YOLOv5's --task study: per weights, a row (P, R, mAP50, mAP50-95, 3 losses, 3 ms) per image size (FP16 on
    CUDA, as YOLOv5); each size's metrics.json in <weights>_<size>/."""
    from utils.plot_study import plot_study, write_study

    sizes = list(opt.study_sizes or STUDY_SIZES)
    out = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=True)
    files = []
    for w in _weights_list(opt.weights):
        f = out / f"study_{Path(str(opt.data)).stem}_{Path(str(w)).stem}.txt"
        rows = []
        for sz in sizes:
            LOGGER.info(f"\nRunning {f.name} --imgsz {sz}...")
            r, _, t = run(**_run_kwargs(opt) | {"weights": w, "imgsz": sz, "plots": False, "half": True,
                                                "save_dir": out / f"{Path(str(w)).stem}_{sz}"})
            rows.append([*r, *t])
        files.append(write_study(f, rows))
    png = plot_study(files, sizes, out / "study.png")
    LOGGER.info(f"Study saved to {out}: {', '.join(f.name for f in files)}, {png.name}")
    return out


def main(argv: list[str] | None = None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opt = parse_opt(argv)
    LOGGER.info("val: " + ", ".join(f"{k}={v}" for k, v in asdict(opt).items()))
    if opt.task == "speed":
        return speed(opt)
    if opt.task == "study":
        return study(opt)
    weights = _weights_list(opt.weights)
    if len(weights) > 1:
        raise UserValueError(f"--task {opt.task} validates one model, got {len(weights)} --weights (ensembles are not "
                         "supported; --task speed and study loop over several)")
    return run(**_run_kwargs(opt) | {"weights": weights[0]})


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
