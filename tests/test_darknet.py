"""Converted yolov3-tiny / yolov4-tiny against Darknet's own outputs on dog.jpg (../shared/darknet)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from models.build import model_from_cfg
from tests.shared_data import shared_path
from utils.darknet_infer import darknet_detect, darknet_postprocess, preprocess
from utils.darknet_weights import load_weights, weights_bytes, weights_float_count

MODELS = {"yolov3-tiny": 8_858_734, "yolov4-tiny": 6_062_814}


@pytest.fixture(scope="module", params=sorted(MODELS))
def darknet_model(request) -> tuple[str, torch.nn.Module]:
    name = request.param
    model = model_from_cfg(shared_path("darknet", f"{name}.cfg")).eval()
    model.load_report = load_weights(model, shared_path("darknet", f"{name}.weights"))
    return name, model


def _ref(name: str, *parts: str):
    return shared_path("darknet", "reference", name, *parts)


def _read_detections(path) -> list[tuple[int, float, float, float, float, float]]:
    """Rows `class prob obj cx cy w h | left top right bottom` of Darknet's detections.txt."""
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        left, right = line.split("|")
        a, b = left.split(), right.split()
        rows.append((int(a[0]), float(a[1]), *map(float, b)))
    return rows


def _run_layers(model: torch.nn.Module, x: torch.Tensor) -> dict[int, torch.Tensor]:
    """Every top-level layer's output of one forward pass."""
    outs: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, k=k: outs.__setitem__(k, o)) for k, m in enumerate(model.model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return outs


def test_weights_count_and_byte_identical_write_back(darknet_model) -> None:
    name, model = darknet_model
    report = model.load_report
    assert report.floats == weights_float_count(model) == MODELS[name]
    assert report.header.minor == 2 and report.header.seen_is_64bit
    assert {t for _, t in report.skipped} <= {"DarknetMaxPool", "DarknetRoute", "Identity", "Upsample", "DarknetDetect"}
    assert len(report.convs) + len(report.skipped) == len(model.model)
    assert weights_bytes(model) == shared_path("darknet", f"{name}.weights").read_bytes()


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_head_and_yolo_outputs_match_darknet(darknet_model, mode: str) -> None:
    name, model = darknet_model
    x = torch.from_numpy(np.load(_ref(name, mode, "input.npy")))
    outs = _run_layers(model, x)
    head = model.detect
    yolo_layers = head.f
    for level, i in enumerate(yolo_layers):
        conv = outs[i - 1]
        ref_conv = np.load(_ref(name, mode, f"layer_{i - 1:03d}_convolutional.npy"))
        np.testing.assert_allclose(conv.numpy(), ref_conv, atol=1e-4, rtol=1e-4)
        bs, _, ny, nx = conv.shape
        raw = conv.view(bs, head.na, head.no, ny, nx).permute(0, 1, 3, 4, 2)
        act = head.activate(level, raw).permute(0, 1, 4, 2, 3).reshape(conv.shape)
        ref_yolo = np.load(_ref(name, mode, f"layer_{i:03d}_yolo.npy"))
        np.testing.assert_allclose(act.numpy(), ref_yolo, atol=1e-4, rtol=1e-4)


def test_every_layer_matches_darknet_unfused(darknet_model) -> None:
    name, model = darknet_model
    ref = np.load(_ref(name, "all_layers_unfused", "all_layers_unfused_fp16.npz"))
    # The npz holds the input as float16 too; the run used the float32 `resize` input.
    outs = _run_layers(model, torch.from_numpy(np.load(_ref(name, "resize", "input.npy"))))
    checked = 0
    for key in ref.files:
        m = re.fullmatch(r"layer_(\d+)_(\w+)", key)
        if not m or m.group(2) == "yolo":  # yolo layers are compared in full precision above
            continue
        r = ref[key].astype(np.float32)
        ours = outs[int(m.group(1))].numpy()
        assert ours.shape == r.shape, key
        np.testing.assert_allclose(ours, r, rtol=1e-3, atol=1e-3, err_msg=key)  # float16 keeps 11 bits: 4.9e-4
        checked += 1
    assert checked == len(model.model) - 1 - len(model.detect.f)  # all but the yolo rows and the head


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_detections_from_darknet_input_are_exact(darknet_model, mode: str) -> None:
    name, model = darknet_model
    x = torch.from_numpy(np.load(_ref(name, mode, "input.npy")))
    with torch.no_grad():
        decoded = model(x)[0][0]
    ours = darknet_postprocess(decoded, (416, 416), (768, 576), letterbox=mode == "letterbox")
    _assert_same_detections(ours, _read_detections(_ref(name, mode, "detections.txt")), conf_tol=1e-4, px_tol=0.01)


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_detections_from_dog_jpg_match_darknet(darknet_model, mode: str) -> None:
    name, model = darknet_model
    ours = darknet_detect(model, shared_path("darknet", "dog.jpg"), letterbox=mode == "letterbox")
    _assert_same_detections(ours, _read_detections(_ref(name, mode, "detections.txt")), conf_tol=0.01, px_tol=1.0)


def _assert_same_detections(ours: list, ref: list, conf_tol: float, px_tol: float) -> None:
    assert len(ours) == len(ref), (ours, ref)
    left = list(ours)
    for c, p, *box in ref:
        match = [d for d in left if d[0] == c and max(abs(a - b) for a, b in zip(d[2:], box)) <= px_tol]
        assert len(match) == 1, f"Darknet's class {c} p={p:.4f} box {box} not found once in {left}"
        assert abs(match[0][1] - p) <= conf_tol, (match[0], p)
        left.remove(match[0])


def test_preprocess_matches_darknet_input_up_to_jpeg_decoding() -> None:
    for mode in ("resize", "letterbox"):
        x = preprocess(shared_path("darknet", "dog.jpg"), 416, 416, letterbox=mode == "letterbox").numpy()
        ref = np.load(_ref("yolov4-tiny", mode, "input.npy"))
        assert x.shape == ref.shape
        d = np.abs(x - ref)
        assert d.max() <= 4 / 255 and d.mean() < 1e-3  # decoders differ by up to 3/255 per pixel
        if mode == "letterbox":  # the 0.5 bands above and below the 768x576 image (416 x 312 inside)
            np.testing.assert_array_equal(x[..., :52, :], ref[..., :52, :])
            np.testing.assert_array_equal(x[..., 364:, :], ref[..., 364:, :])


def test_darknet_nms_keeps_what_torchvision_batched_nms_keeps() -> None:
    """darknet_nms (per-class NMS through utils/nms_kernel, no torchvision import) zeroes exactly the (box, class)
    entries that torchvision.ops.batched_nms drops, for few classes and many."""
    import torchvision

    from utils.darknet_infer import darknet_nms

    g = torch.Generator().manual_seed(0)
    for n, nc, density in ((60, 3, 0.5), (400, 20, 0.3)):
        xywh = torch.cat((torch.rand(n, 2, generator=g), torch.rand(n, 2, generator=g) * 0.3 + 0.02), 1)
        probs = torch.rand(n, nc, generator=g) * (torch.rand(n, nc, generator=g) < density)
        out = darknet_nms(xywh, probs, 0.45)
        box, cls = torch.nonzero(probs > 0, as_tuple=True)
        xyxy = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
        keep = torchvision.ops.batched_nms(xyxy[box].double(), probs[box, cls].double(), cls, 0.45)
        want = torch.zeros_like(probs)
        want[box[keep], cls[keep]] = probs[box[keep], cls[keep]]
        assert torch.equal(out, want) and 0 < (out > 0).sum() < (probs > 0).sum()
