"""ONNX files through ONNX Runtime: `--backend` picks the execution provider (cpu, cuda, openvino, dnnl, ... or a
full provider name); metadata from the file's metadata_props (export.py); in-graph NMS exports give (n, 6) rows.
`open_onnxruntime` needs no torch (an ExportSession on NumPy arrays); models/backends.py wraps it for torch callers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.backend_export import (ExportSession, check_call, check_input_shape, check_output_width, nms_rows,
                                   parse_metadata, static_fields)
from utils.cli import UserValueError

SHORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                   "tensorrt": "TensorrtExecutionProvider", "openvino": "OpenVINOExecutionProvider",
                   "dnnl": "DnnlExecutionProvider", "coreml": "CoreMLExecutionProvider",
                   "directml": "DmlExecutionProvider"}


def providers(choice: str | None, cuda: bool) -> list[str]:
    """Execution providers for `--backend` (None: CUDA for a cuda device, else CPU); CPU always last as fallback."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if choice is None:
        wanted = "CUDAExecutionProvider" if cuda else "CPUExecutionProvider"
    else:
        wanted = SHORT_PROVIDERS.get(choice.lower(), choice)
    if wanted not in available:
        raise UserValueError(f"--backend {choice or ('cuda' if cuda else 'cpu')}: ONNX Runtime provider {wanted} is "
                             f"not available here (available: {', '.join(available)})")
    return [wanted] + ["CPUExecutionProvider"] * (wanted != "CPUExecutionProvider")


CPU_PROVIDERS = ("CPUExecutionProvider", "DnnlExecutionProvider", "OpenVINOExecutionProvider")  # compute on this CPU


def session_options():
    """ORT's defaults, except that the intra-op threads stop spinning when a run ends.

    By default they spin for a while after each run, taking the cores from the Python work between runs
    (letterbox, NMS, saving): on 2 cores detect.py's pre-process went 1.2 -> 5 ms and NMS 1.3 -> 4 ms per image.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


def _session(path: Path, provider_list: list[str]):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), session_options(), providers=provider_list)
    except Exception as e:  # ORT raises its own pybind types (InvalidProtobuf, Fail, ...) for a bad file
        raise UserValueError(f"{path}: not a loadable ONNX model ({type(e).__name__}: {str(e).strip()[:300]}); "
                             f"a truncated or corrupt file? Export it again") from None


def open_onnxruntime(path: Path, runtime: str | None = None, cuda: bool = False) -> ExportSession:
    """An ExportSession over an ONNX Runtime session of `path` (`runtime`: --backend; `cuda`: for a cuda device)."""
    chosen = providers(runtime, cuda)
    session = _session(path, chosen)
    meta = parse_metadata(path, session.get_modelmeta().custom_metadata_map)
    inp, outs = session.get_inputs()[0], session.get_outputs()
    check_input_shape(path, meta, list(inp.shape))
    width = outs[0].shape[-1] if outs[0].shape else None
    check_output_width(path, meta, width if isinstance(width, int) else None)
    dtype = np.float16 if "float16" in inp.type else np.float32
    out_names = [o.name for o in outs]

    def infer(im: np.ndarray, nms: dict | None):
        check_call(path, meta, im)
        feeds = {inp.name: im.astype(dtype, copy=False)}
        if nms:  # in-graph NMS: the thresholds are graph inputs (see models/backend_export.with_thresholds)
            feeds |= {k: np.array([nms[k]], np.float32) for k in ("conf_thres", "iou_thres")}
            return nms_rows(*session.run(out_names, feeds)[:3])
        out = session.run(out_names, feeds)[0]
        check_output_width(path, meta, out.shape[-1])  # a dynamic graph leaves its width unknown until it runs
        return out

    return ExportSession(infer, meta["names"], int(meta["stride"]), "onnx", path, meta,
                         own_cpu_threads=chosen[0] in CPU_PROVIDERS, **static_fields(meta))
