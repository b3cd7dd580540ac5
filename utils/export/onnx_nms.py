"""In-graph NMS for ONNX exports (`export.py --include onnx --nms`): the decoded (B, N, 5 + nc) output becomes
`boxes` (B, K, 4) xyxy in input pixels, `scores` (B, K) and `classes` (B, K) int64, K = min(max_det, rows),
sorted by score; rows past an image's detections are padding with class -1, score 0 and a zero box.

The semantics are utils/nms.py's (YOLOv5 v7.0): class scores obj * cls (or cls without objectness), a score must
exceed conf_thres, boxes of different classes never suppress each other; `multi_label` keeps every class above
conf_thres per box (val.py), otherwise the best class only (detect.py). Only YOLOv5's cap of 30,000 candidates
before NMS is not applied. `conf_thres` and `iou_thres` are (1,) float graph inputs; the export's values are in its
metadata (`nms`), which the backends feed unless told otherwise.
"""
from __future__ import annotations

import numpy as np

from utils.nms import MAX_WH

OUTPUTS = ("boxes", "scores", "classes")
THRESHOLD_INPUTS = ("conf_thres", "iou_thres")


def _const(name: str, value, dtype=np.int64):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _reduce_max(opset: int):
    """ReduceMax over the class axis (axes became an input in opset 18)."""
    from onnx import helper

    if opset >= 18:
        return helper.make_node("ReduceMax", ["nms_conf", "nms_c2ax"], ["nms_best"], keepdims=1)
    return helper.make_node("ReduceMax", ["nms_conf"], ["nms_best"], axes=[2], keepdims=1)


def _nodes(src: str, has_objectness: bool, multi_label: bool, opset: int):
    """The NMS nodes reading tensor `src`."""
    from onnx import helper

    n = helper.make_node
    nodes = [
        n("Slice", [src, "nms_c0", "nms_c2", "nms_c2ax"], ["nms_xy"]),
        n("Slice", [src, "nms_c2", "nms_c4", "nms_c2ax"], ["nms_wh"]),
        n("Mul", ["nms_wh", "nms_half"], ["nms_hwh"]),
        n("Sub", ["nms_xy", "nms_hwh"], ["nms_p1"]),
        n("Add", ["nms_xy", "nms_hwh"], ["nms_p2"]),
        n("Concat", ["nms_p1", "nms_p2"], ["nms_boxes"], axis=2),
        n("Slice", [src, "nms_cfirst", "nms_cbig", "nms_c2ax"], ["nms_cls"]),
    ]
    if has_objectness:
        nodes += [n("Slice", [src, "nms_c4", "nms_c5", "nms_c2ax"], ["nms_obj"]),
                  n("Mul", ["nms_cls", "nms_obj"], ["nms_conf"])]
    else:
        nodes += [n("Identity", ["nms_cls"], ["nms_conf"])]
    if multi_label:  # one NMS class per model class: boxes of different classes are independent
        nodes += [n("Transpose", ["nms_conf"], ["nms_st"], perm=[0, 2, 1]),
                  n("Identity", ["nms_boxes"], ["nms_ob"])]
    else:  # best class only; the class offset keeps classes apart in one NMS class
        nodes += [_reduce_max(opset),
                  n("ArgMax", ["nms_conf"], ["nms_arg"], axis=2, keepdims=1),
                  n("Cast", ["nms_arg"], ["nms_argf"], to=1),
                  n("Mul", ["nms_argf", "nms_maxwh"], ["nms_off"]),
                  n("Add", ["nms_boxes", "nms_off"], ["nms_ob"]),
                  n("Transpose", ["nms_best"], ["nms_st"], perm=[0, 2, 1])]
    nodes += [
        n("NonMaxSuppression", ["nms_ob", "nms_st", "nms_maxdet", "iou_thres", "conf_thres"], ["nms_sel"]),
        n("GatherND", ["nms_st", "nms_sel"], ["nms_selscore"]),
        n("Mul", ["nms_st", "nms_zero"], ["nms_zeros"]),
        n("ScatterND", ["nms_zeros", "nms_sel", "nms_selscore"], ["nms_kept"]),
        n("Reshape", ["nms_kept", "nms_flatshape"], ["nms_flat"]),
        n("Shape", ["nms_flat"], ["nms_fshape"]),
        n("Gather", ["nms_fshape", "nms_one"], ["nms_total"]),
        n("Min", ["nms_total", "nms_maxdet"], ["nms_k"]),
        n("TopK", ["nms_flat", "nms_k"], ["scores", "nms_idx"], axis=1, largest=1, sorted=1),
        n("Shape", ["nms_boxes"], ["nms_bshape"]),
        n("Gather", ["nms_bshape", "nms_one"], ["nms_n"]),
        n("Mod", ["nms_idx", "nms_n"], ["nms_row"]),
        n("Unsqueeze", ["nms_row", "nms_lastax"], ["nms_row3"]),
        n("GatherND", ["nms_boxes", "nms_row3"], ["nms_rawbox"], batch_dims=1),
        n("Greater", ["scores", "nms_zero"], ["nms_valid"]),
        n("Unsqueeze", ["nms_valid", "nms_lastax"], ["nms_valid3"]),
        n("Where", ["nms_valid3", "nms_rawbox", "nms_zero"], ["boxes"]),
    ]
    if multi_label:
        nodes += [n("Div", ["nms_idx", "nms_n"], ["nms_class"])]
    else:
        nodes += [n("Squeeze", ["nms_arg", "nms_lastax"], ["nms_arg2"]),
                  n("GatherElements", ["nms_arg2", "nms_row"], ["nms_class"], axis=1)]
    nodes += [n("Where", ["nms_valid", "nms_class", "nms_minus1"], ["classes"])]
    return nodes


def add_nms(proto, max_det: int, has_objectness: bool = True, multi_label: bool = False):
    """`proto` (one output, the decoded rows) with NMS appended; returns a new ModelProto."""
    import onnx
    from onnx import TensorProto, helper

    if max_det < 1:
        raise ValueError(f"--nms needs max_det >= 1, got {max_det}")
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    g = model.graph
    src = g.output[0].name
    first = 5 if has_objectness else 4
    g.initializer.extend([
        _const("nms_c0", [0]), _const("nms_c2", [2]), _const("nms_c4", [4]), _const("nms_c5", [5]),
        _const("nms_cfirst", [first]), _const("nms_cbig", [2 ** 62]), _const("nms_c2ax", [2]),
        _const("nms_half", 0.5, np.float32),
        _const("nms_zero", 0.0, np.float32),
        _const("nms_maxdet", [max_det]), _const("nms_flatshape", [0, -1]), _const("nms_one", [1]),
        _const("nms_lastax", [-1]), _const("nms_minus1", -1)])
    if not multi_label:
        g.initializer.append(_const("nms_maxwh", float(MAX_WH), np.float32))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    g.node.extend(_nodes(src, has_objectness, multi_label, opset))
    g.input.extend([helper.make_tensor_value_info(k, TensorProto.FLOAT, [1]) for k in THRESHOLD_INPUTS])
    del g.output[:]
    batch = proto.graph.output[0].type.tensor_type.shape.dim[0]
    b = batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or "batch")
    g.output.extend([helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [b, "det", 4]),
                     helper.make_tensor_value_info("scores", TensorProto.FLOAT, [b, "det"]),
                     helper.make_tensor_value_info("classes", TensorProto.INT64, [b, "det"])])
    onnx.checker.check_model(model)
    return model


def verify_nms(path, im, decoded, nms: dict, has_objectness: bool, atol: float) -> int:
    """Run the NMS export on `im` at its own thresholds and at conf 0.001 (many boxes) and compare with
    utils/nms.py on the PyTorch model's decoded output `decoded`; returns the number of rows compared."""
    import onnxruntime as ort
    import torch

    from utils.nms import non_max_suppression

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    compared = 0
    for conf in (nms["conf_thres"], 0.001):
        feeds = {"images": im.numpy(), "conf_thres": np.array([conf], np.float32),
                 "iou_thres": np.array([nms["iou_thres"]], np.float32)}
        boxes, scores, classes = session.run(list(OUTPUTS), feeds)
        want = non_max_suppression(decoded, conf, nms["iou_thres"], multi_label=nms["multi_label"],
                                   max_det=nms["max_det"], has_objectness=has_objectness)
        for i, w in enumerate(want):
            keep = classes[i] >= 0
            got = torch.from_numpy(np.concatenate([boxes[i][keep], scores[i][keep, None],
                                                   classes[i][keep, None].astype(np.float32)], 1))
            if got.shape != w.shape or not torch.equal(got[:, 5], w[:, 5]) or \
                    (len(w) and float((got[:, :5] - w[:, :5]).abs().max()) > atol):
                raise AssertionError(f"{path}: in-graph NMS at conf {conf} differs from utils/nms.py "
                                     f"({len(got)} vs {len(w)} rows in image {i})")
            compared += len(w)
    return compared
