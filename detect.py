"""Run a detector on images, folders, globs, .txt lists, videos, webcams or streams.

    python detect.py --weights yolov5n.pt --source data/images --img 640

Annotated images/videos go to runs/detect/exp<N>/ (labels/*.txt with --save-txt, crops/<class>/ with
--save-crop). One log line per image or frame, then YOLOv5's Speed line.

Batching: images are letterboxed as YOLOv5's detect.py does (auto=True: each image keeps its own
minimal stride-multiple shape), and consecutive images whose letterboxed shapes are equal are run as one
batch (up to --batch-size). Each image therefore sees exactly the input it would get alone; results
equal one-by-one inference up to float summation order (~1e-5). Videos and streams run frame by frame.
Saving runs in a thread pool, overlapping inference. Loading and letterboxing run in a background thread
when inference runs on an accelerator; on the CPU they run inline, because inference already uses every core
and a competing loader thread slows the whole run (on 2 cores, 8.2 s -> 6.4 s for coco128 through ONNX Runtime).

An ONNX file or OpenVINO IR that computes on the CPU runs without torch: its ExportSession (models/backend_export.py)
takes NumPy arrays and NMS is utils/nms_numpy.py, whose rows equal utils/nms.py's. Not importing torch saves about
a second of every run (a quarter of coco128's through ONNX Runtime on 2 cores). run() returns NumPy rows either way.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.backend_export import ExportSession, detections, open_export, with_thresholds
from models.backend_openvino import is_openvino
from utils.data.augment import letterbox
from utils.data.chw import chw_rgb
from utils.boxes import scale_boxes
from utils.detect_output import ResultWriter
from utils.detection.options import DetectOptions
from utils.image_size import as_hw
from utils.paths import increment_path
from utils.data.sources import Frame, iter_source

LOGGER = logging.getLogger("yolo.detect")


@dataclass
class Prepared:
    """A frame with its network input (CHW RGB uint8)."""
    frame: Frame
    im: np.ndarray


def prepare(frame: Frame, imgsz: tuple[int, int], stride: int, auto: bool) -> Prepared:
    """Letterbox (YOLOv5 detect.py: auto pads only to a stride multiple) and convert to CHW RGB."""
    im = letterbox(frame.im0, imgsz, stride=stride, auto=auto)[0]
    return Prepared(frame, chw_rgb(im))


def prefetch(items: Iterator[Prepared], depth: int = 16) -> Iterator[Prepared]:
    """Run the `items` iterator in a background thread, `depth` ahead of the consumer; errors are re-raised."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work() -> None:
        try:
            for item in items:
                q.put(item)
        except BaseException as e:  # handed to the consumer
            q.put(e)
        q.put(done)

    threading.Thread(target=work, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def batches(items: Iterator[Prepared], batch_size: int) -> Iterator[list[Prepared]]:
    """Group consecutive still images of the same input shape (videos and streams: one frame each)."""
    batch: list[Prepared] = []
    for p in items:
        if batch and (p.frame.is_video or batch[0].frame.is_video or p.im.shape != batch[0].im.shape
                      or len(batch) >= batch_size):
            yield batch
            batch = []
        batch.append(p)
    if batch:
        yield batch


def describe(det: np.ndarray, names: list[str]) -> str:
    """'2 persons, 1 bus' (YOLOv5's summary of one image's detections); '(no detections)' when empty."""
    if not len(det):
        return "(no detections)"
    classes, counts = np.unique(det[:, 5], return_counts=True)
    return ", ".join(f"{n} {names[int(c)]}{'s' * (n > 1)}" for c, n in zip(classes.tolist(), counts.tolist()))


def runs_without_torch(opt: DetectOptions) -> bool:
    """--weights is an ONNX file or OpenVINO IR that computes on the CPU, with no flag that needs a torch model."""
    path = Path(opt.weights)
    if opt.augment or opt.half or opt.compile or opt.darknet_mode or str(opt.device).strip().lower() not in ("", "cpu"):
        return False
    if is_openvino(path):
        return True
    if path.suffix.lower() != ".onnx" or opt.bf16:
        return False
    if str(opt.device).strip().lower() == "cpu" or opt.runtime:
        return True
    import onnxruntime as ort  # --device '' (the default): a CUDA build goes the torch way, which picks the GPU

    return "CUDAExecutionProvider" not in ort.get_available_providers()


def load_detector(opt: DetectOptions):
    """The ExportSession of a CPU export (runs_without_torch), else the Backend of --weights (with --cfg and
    --darknet-mode for Darknet .weights; --backend, --compile, --bf16)."""
    session = open_export(Path(opt.weights), opt.runtime, bf16=opt.bf16) if runs_without_torch(opt) else None
    if session is not None and not session.test_cfg:  # a dense head's own post-processing (mmdet) is torch code
        return session
    from models.backends import from_export_session, load_backend
    from utils.torch_utils import select_device

    dev = select_device(opt.device)
    if session is not None:
        return from_export_session(session, dev)
    return load_backend(opt.weights, dev, fuse=True, half=opt.half and dev.type == "cuda", cfg=opt.cfg,
                        darknet_mode=opt.darknet_mode, runtime=opt.runtime, compile=opt.compile, bf16=opt.bf16)


def in_image_pixels(dets: list[np.ndarray], batch: list[Prepared], hw: tuple[int, int]) -> list[np.ndarray]:
    """Boxes of an (h, w) input mapped to each original image and rounded, as YOLOv5 writes them."""
    for det, p in zip(dets, batch):
        det[:, :4] = scale_boxes(hw, det[:, :4], p.frame.im0.shape).round()
    return dets


def infer(backend, batch: list[Prepared], opt: DetectOptions) -> tuple[list[np.ndarray], list[float]]:
    """Detections per frame in original-image pixels and (pre, inf, nms) s, through a torch Backend."""
    import torch

    from utils.nms import head_nms_kwargs

    with torch.inference_mode():
        t0 = time.perf_counter()
        im = torch.from_numpy(np.stack([p.im for p in batch])).to(backend.device)
        im = (im.half() if backend.fp16 else im.float()) / 255
        t1 = time.perf_counter()
        pred = backend(im, augment=opt.augment)
        t2 = time.perf_counter()
        kw = head_nms_kwargs(getattr(backend, "test_cfg", None),
                             dict(conf_thres=opt.conf_thres, iou_thres=opt.iou_thres, max_det=opt.max_det))
        dets = detections(backend, pred, hw=im.shape[2:], classes=opt.classes, agnostic=opt.agnostic_nms,
                          has_objectness=getattr(backend, "has_objectness", True), **kw)
        dets = in_image_pixels([d.float().cpu().numpy() for d in dets], batch, tuple(im.shape[2:]))
    return dets, [t1 - t0, t2 - t1, time.perf_counter() - t2]


def infer_export(session: ExportSession, batch: list[Prepared], opt: DetectOptions) -> tuple[list[np.ndarray],
                                                                                              list[float]]:
    """The same through an ExportSession, in NumPy (no torch)."""
    t0 = time.perf_counter()
    im = np.stack([p.im for p in batch]).astype(np.float32) / np.float32(255)
    t1 = time.perf_counter()
    pred = session.run(im)
    t2 = time.perf_counter()
    dets = detections(session, pred, opt.conf_thres, opt.iou_thres, classes=opt.classes, agnostic=opt.agnostic_nms,
                      max_det=opt.max_det, has_objectness=session.has_objectness)
    return in_image_pixels(dets, batch, im.shape[2:]), [t1 - t0, t2 - t1, time.perf_counter() - t2]


def infer_images(backend, batch: list[Prepared], opt: DetectOptions) -> tuple[list[np.ndarray], list[float]]:
    """A backend with its own end-to-end pipeline (Darknet mode) on each original image."""
    t0 = time.perf_counter()
    dets = [backend.detect_image(p.frame.im0, opt.conf_thres, opt.iou_thres)[:opt.max_det].numpy() for p in batch]
    return dets, [0.0, time.perf_counter() - t0, 0.0]


def host_threads_beside(backend):
    """torch's and OpenCV's own work (scaling, letterbox, NMS, saving) on one thread each while a runtime's CPU pool
    runs the forwards; their idle threads otherwise spin on its cores (coco128 through ONNX Runtime on 2 cores:
    forward 20 -> 17 ms, 4.7 -> 4.3 s). A no-op for PyTorch models and accelerators."""
    from utils.host_threads import host_threads

    return host_threads(1) if backend.own_cpu_threads else contextlib.nullcontext()


def run(weights="yolov5s.pt", source="data/images", auto: bool = True, **kwargs) -> tuple[Path, list]:
    """Detect on `source` -> (save_dir, [(path, frame index, det (n, 6) float32 array [x1, y1, x2, y2, conf, cls]),
    ...]).

    `auto=False` letterboxes every image to the full square --imgsz (as the reference data was made);
    the default pads only to a stride multiple, like YOLOv5's detect.py.
    """
    opt = DetectOptions(weights=str(weights), source=str(source), **kwargs)
    detector = load_detector(opt)
    names, stride, imgsz = detector.names, detector.stride, as_hw(opt.imgsz)
    detect_image = getattr(detector, "detect_image", None)
    step = infer_images if detect_image is not None else infer_export if isinstance(detector, ExportSession) else infer
    if detect_image is None:
        with_thresholds(detector, opt.conf_thres, opt.iou_thres, multi_label=False)
    if not detector.dynamic:
        imgsz, auto, opt.batch_size = detector.imgsz, False, 1
    save_dir = increment_path(Path(opt.project) / opt.name, exist_ok=opt.exist_ok, mkdir=True)
    writer = ResultWriter(save_dir, names, opt)
    frames, kind = iter_source(opt.source, opt.vid_stride)
    items = map(lambda f: prepare(f, imgsz, stride, auto), frames)
    if not isinstance(detector, ExportSession) and detector.device.type != "cpu":
        items = prefetch(items)
    results, times, seen, shape = [], np.zeros(3), 0, None
    with ThreadPoolExecutor(max_workers=1) as pool, host_threads_beside(detector):
        writer.pool = pool
        for batch in batches(items, opt.batch_size if kind not in ("webcam", "stream") else 1):
            dets, dt = step(detector, batch, opt)
            times += dt
            seen += len(batch)
            shape = shape or (1, 3, *batch[0].im.shape[1:])
            for p, det in zip(batch, dets):
                LOGGER.info(f"{p.frame.label}: {p.im.shape[1]}x{p.im.shape[2]} {describe(det, names)}, "
                            f"{dt[1] / len(batch) * 1e3:.1f}ms")
                writer.write(p.frame, det)
                results.append((p.frame.path, p.frame.index, det))
        writer.close()
    LOGGER.info("Speed: %.1fms pre-process, %.1fms inference, %.1fms NMS per image at shape %s"
                % (*(times / max(seen, 1) * 1e3), shape))
    LOGGER.info(writer.summary())
    return save_dir, results


def parse_opt(argv: list[str] | None = None) -> DetectOptions:
    """argparse -> DetectOptions (YOLOv5's flag names)."""
    d = DetectOptions()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=d.weights,
                   help=".pt, .torchscript, .onnx, *_openvino_model/, or Darknet .weights with --cfg")
    p.add_argument("--source", default=d.source, help="image, folder, glob, .txt list, video, webcam index, URL")
    p.add_argument("--cfg", default=None, help="Darknet .cfg for .weights files")
    p.add_argument("--darknet-mode", action="store_true",
                   help="Darknet .weights: Darknet's own resize, thresholds and NMS instead of YOLOv5's pipeline")
    p.add_argument("--imgsz", "--img", "--img-size", nargs="+", type=int, default=d.imgsz, help="h [w]")
    p.add_argument("--conf-thres", type=float, default=d.conf_thres)
    p.add_argument("--iou-thres", type=float, default=d.iou_thres)
    p.add_argument("--max-det", type=int, default=d.max_det)
    p.add_argument("--device", default=d.device, help="cuda device, i.e. 0 or cpu")
    p.add_argument("--classes", nargs="+", type=int, help="keep only these class indices")
    for flag in ("view-img", "save-txt", "save-conf", "save-crop", "nosave", "agnostic-nms", "augment",
                 "exist-ok", "hide-labels", "hide-conf", "half"):
        p.add_argument(f"--{flag}", action="store_true")
    p.add_argument("--project", default=d.project)
    p.add_argument("--name", default=d.name)
    p.add_argument("--line-thickness", type=int, default=d.line_thickness, help="box line width (pixels)")
    p.add_argument("--vid-stride", type=int, default=d.vid_stride, help="use every n-th video frame")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="max images per batch (same shape only)")
    p.add_argument("--backend", dest="runtime", default=d.runtime,
                   help="ONNX Runtime execution provider (cpu, cuda, openvino, ...) / OpenVINO device (CPU, GPU, AUTO)")
    p.add_argument("--compile", action="store_true", help="PyTorch weights: torch.compile (inductor, frozen)")
    p.add_argument("--bf16", action="store_true",
                   help="CPUs with AVX-512 BF16 / AMX: bf16 autocast (PyTorch), bf16 inference (OpenVINO IR)")
    return DetectOptions(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None):
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opt = asdict(parse_opt(argv))
    return run(opt.pop("weights"), opt.pop("source"), **opt)


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
