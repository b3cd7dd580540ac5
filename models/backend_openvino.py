"""OpenVINO IR exports (`yolov5n_openvino_model/`, `yolov5n_int8_openvino_model/` or the `.xml` inside) through
the OpenVINO runtime; `--backend` picks the device (CPU, GPU, AUTO, ...). Metadata lives in the IR's own rt_info
(section `yolo`, JSON values), written by export.py.

Inference runs at f32 precision by default: on CPUs with AMX, OpenVINO's default would be bf16, which moves the
figures away from PyTorch's; INT8 IRs still run their quantized layers in int8. `bf16=True` (--bf16) asks for bf16
on a CPU that has it (AVX-512 BF16 or AMX): bench/backends.py timed yolov5n at 640 batch 1 in 22.5 ms instead of
31.2 on a 2-core EPYC, val mAP50-95 0.3605 instead of 0.3609. `open_openvino` needs no torch (an ExportSession on
NumPy arrays); models/backends.py wraps it for torch callers. A dynamic IR also gets a static compilation for
each input shape that recurs (models/openvino_shapes.py).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from models.backend_export import (METADATA_KEYS, ExportSession, check_call, check_input_shape, check_output_width,
                                   parse_metadata, static_fields)
from models.openvino_shapes import STATIC_AFTER, StaticShapes
from utils.cli import UserFileNotFoundError, UserValueError

RT_SECTION = "yolo"
DIR_SUFFIX = "_openvino_model"


def is_openvino(path: Path) -> bool:
    """True for an OpenVINO IR folder (`*_openvino_model`) or `.xml` file."""
    return path.suffix.lower() == ".xml" or (path.is_dir() and path.name.endswith(DIR_SUFFIX))


def ir_file(path: Path) -> Path:
    """The .xml of an IR folder or file, with its .bin beside it; a clear error naming what is missing."""
    if path.is_dir():
        xmls = sorted(path.glob("*.xml"))
        if len(xmls) != 1:
            raise UserValueError(f"{path}: an OpenVINO model folder holds exactly one .xml, found {len(xmls)}")
        path = xmls[0]
    if not path.is_file():
        raise UserFileNotFoundError(f"OpenVINO model not found: {path}")
    if not path.with_suffix(".bin").is_file():
        raise UserFileNotFoundError(f"{path}: its weights file {path.with_suffix('.bin').name} is missing")
    return path


def read_metadata(model) -> dict[str, str]:
    """The raw (JSON string) metadata stored in an ov.Model's rt_info."""
    return {k: model.get_rt_info([RT_SECTION, k]).astype(str) for k in METADATA_KEYS
            if model.has_rt_info([RT_SECTION, k])}


def write_metadata(model, meta: dict) -> None:
    """Store export metadata in an ov.Model's rt_info (JSON values, as ONNX metadata_props)."""
    import json

    for k, v in meta.items():
        model.set_rt_info(json.dumps(v), [RT_SECTION, k])


@functools.cache
def shared_core():
    """The process's one ov.Core: every IR compiles through it.

    Each Core's CPU plugin installs an alternate signal stack on the thread that first compiles with it and, when the
    Core is freed, puts back the one it found. Cores freed out of creation order so put back a stack already unmapped,
    and the next signal delivered to that thread (a DataLoader worker's SIGCHLD, Ctrl-C) killed the process with
    SIGSEGV. One Core, freed only at exit, never does; it also loads the plugin once."""
    import openvino as ov

    return ov.Core()


def _read(xml: Path):
    core = shared_core()
    try:
        return core, core.read_model(str(xml))
    except Exception as e:  # RuntimeError for a truncated .xml/.bin, or a .bin of another model
        raise UserValueError(f"{xml}: not a loadable OpenVINO model ({str(e).strip().splitlines()[0][:300]}); "
                             f"a truncated or corrupt file? Export it again") from None


def cpu_config(core, bf16: bool) -> dict[str, str]:
    """compile_model config for the CPU plugin: f32, or bf16 where the CPU runs it natively (else a clear error)."""
    if not bf16:
        return {"INFERENCE_PRECISION_HINT": "f32"}
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise UserValueError("--bf16: OpenVINO finds neither AVX-512 BF16 nor AMX on this CPU")
    return {"INFERENCE_PRECISION_HINT": "bf16"}


def open_openvino(path: Path, runtime: str | None = None, bf16: bool = False,
                  static_after: int = STATIC_AFTER) -> ExportSession:
    """An ExportSession over an OpenVINO compiled model of `path` (folder or .xml); `bf16` on CPU only.

    A dynamic IR is compiled once for any shape, and again for an input shape once it has come `static_after` times."""
    xml = ir_file(path)
    core, model = _read(xml)
    meta = parse_metadata(xml, read_metadata(model))
    shape = model.inputs[0].get_partial_shape()
    check_input_shape(xml, meta, [d.get_length() if d.is_static else None for d in shape])
    out0 = model.outputs[0].get_partial_shape()
    check_output_width(xml, meta, out0[len(out0) - 1].get_length() if out0[len(out0) - 1].is_static else None)
    target = (runtime or "CPU").upper()
    known = {d.split(".")[0] for d in core.available_devices} | {"AUTO", "MULTI", "HETERO"}  # GPU.0 -> GPU
    if target.split(":")[0].split(".")[0] not in known:
        raise UserValueError(f"--backend {runtime}: OpenVINO device not available here "
                             f"(available: {', '.join(core.available_devices)})")
    if bf16 and not target.startswith("CPU"):
        raise UserValueError(f"--bf16 with OpenVINO applies to the CPU device, not --backend {runtime}")
    config = cpu_config(core, bf16) if target.startswith("CPU") else {}
    dynamic = compiled_request(core.compile_model(model, target, config))
    shapes = None
    if not shape.is_static:  # a recurring input shape gets a faster static compilation (models/openvino_shapes.py)
        shapes = StaticShapes(lambda s: compiled_request(core.compile_model(static_copy(model, s), target, config)),
                              after=static_after)

    def infer(im: np.ndarray, nms: dict | None) -> np.ndarray:  # an IR has no in-graph NMS (only ONNX gets one)
        check_call(xml, meta, im)
        x = np.ascontiguousarray(im, dtype=np.float32)
        compiled, request = (shapes.get(x.shape) if shapes else None) or dynamic
        result = request.infer({0: x})
        out = np.array(result[compiled.outputs[0]])
        check_output_width(xml, meta, out.shape[-1])  # a dynamic graph leaves its width unknown until it runs
        return out

    return ExportSession(infer, meta["names"], int(meta["stride"]), "openvino", xml, meta,
                         own_cpu_threads=target.startswith("CPU"), static_shapes=shapes, **static_fields(meta))


def compiled_request(compiled) -> tuple:
    """(compiled model, its infer request)."""
    return compiled, compiled.create_infer_request()


def static_copy(model, shape: tuple[int, ...]):
    """A copy of the ov.Model with its input fixed to `shape`."""
    copy = model.clone()
    copy.reshape(list(shape))
    return copy
