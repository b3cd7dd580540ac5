"""Analysis tools: receptive field, per-layer profile, feature maps, anchors, loss curves, positive samples."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.yolo import Model, load_model_yaml, parse_model
from tests.shared_data import shared_path
from utils.analysis.effective_rf import effective_rf, theoretical_box
from utils.analysis.receptive_field import RFError, apply_module, receptive_fields, Span

REPO = Path(__file__).resolve().parents[1]


def _picture_ok(path: Path) -> None:
    im = cv2.imread(str(path))
    assert im is not None and im.size > 0, path
    assert im.std() > 1.0, f"{path} is a blank picture"


pytestmark = pytest.mark.usefixtures("one_thread")


def _graph(name: str) -> torch.nn.Sequential:
    """The YAML rows of a model, built without the (slower) full Model initialisation."""
    return parse_model(load_model_yaml(name)[0])[0]


@pytest.fixture(scope="module")
def yolov5n() -> Model:
    torch.manual_seed(0)
    return Model("yolov5n.yaml").eval()


# ---------------------------------------------------------------- receptive field
def test_receptive_field_yolov5s_detect_inputs_by_hand() -> None:
    # Conv k/s adds (k-1)*jump and multiplies jump by s; a C3 with n bottlenecks adds n * 2 * jump (one 3x3 each);
    # SPPF k=5 chains three 5x5 pools: + 3 * 4 * jump; upsampling halves the jump; Concat keeps the larger field.
    # yolov5s: depth 0.33 -> C3 repeats 3,6,9,3 -> 1,2,3,1 and head C3s n=1.
    rf, j = 1 + 5 * 1, 2             # 0: Conv 6x6 s2                              -> 6, stride 2
    rf, j = rf + 2 * j, j * 2        # 1: Conv 3 s2                                -> 10, 4
    rf += 1 * 2 * j                  # 2: C3 n=1                                   -> 18
    rf, j = rf + 2 * j, j * 2        # 3: Conv 3 s2                                -> 26, 8
    rf += 2 * 2 * j                  # 4: C3 n=2                                   -> 58
    rf4 = rf
    rf, j = rf + 2 * j, j * 2        # 5: Conv 3 s2                                -> 74, 16
    rf += 3 * 2 * j                  # 6: C3 n=3                                   -> 170
    rf, j = rf + 2 * j, j * 2        # 7: Conv 3 s2                                -> 202, 32
    rf += 1 * 2 * j                  # 8: C3 n=1                                   -> 266
    rf += 3 * 4 * j                  # 9: SPPF k=5                                 -> 650 (10: 1x1 conv, same)
    rf10 = rf
    j //= 2                          # 11: upsample -> stride 16; 12: cat with layer 6 (170): 650
    rf += 2 * j                      # 13: C3 n=1 (no shortcut, same 3x3)          -> 682 (14: 1x1)
    rf14 = rf
    j //= 2                          # 15: upsample -> 8; 16: cat with layer 4 (58 < 682)
    rf += 2 * j                      # 17: C3 n=1                                  -> 698  (P3)
    p3 = (rf, j)
    rf, j = rf + 2 * j, j * 2        # 18: Conv 3 s2 -> 714, 16; 19: cat with 14 (682)
    rf = max(rf, rf14) + 2 * j       # 20: C3                                      -> 746  (P4)
    p4 = (rf, j)
    rf, j = rf + 2 * j, j * 2        # 21: Conv 3 s2 -> 778, 32; 22: cat with 10 (650)
    rf = max(rf, rf10) + 2 * j       # 23: C3                                      -> 842  (P5)
    p5 = (rf, j)
    assert (p3, p4, p5) == ((698, 8), (746, 16), (842, 32)) and rf4 == 58

    report = receptive_fields(_graph("yolov5s.yaml"))
    got = [(i, rf[0].size, rf[0].jump, rf[1].size) for i, rf in report.detect_inputs]
    assert got == [(17, 698, 8, 698), (20, 746, 16, 746), (23, 842, 32, 842)]
    assert report.layers[4].rf[0].size == rf4
    assert "Detect input P2 (layer 23): receptive field 842 px, stride 32" in report.table()


def test_receptive_field_yolov3_tiny_heads_by_hand() -> None:
    # Darknet tiny: (Conv 3x3 s1, MaxPool 2x2 s2) x5: each conv + 2*jump, each pool + 1*jump then jump*2.
    rf, j = 1, 1
    for _ in range(5):
        rf += 2 * j                  # Conv 3x3: 3, 8, 18, 38, 78 (layers 0, 2, 4, 6, 8)
        if j == 16:
            rf8 = rf                 # layer 8 output (stride 16) feeds the P4 route
        rf, j = rf + j, j * 2        # MaxPool 2 s2: 4, 10, 22, 46, 94
    rf += 2 * j                      # 10: Conv 3x3 at stride 32 -> 158 (11: ZeroPad, no change)
    rf += j                          # 12: MaxPool 2 s1 -> 190
    rf += 2 * j                      # 13: Conv 3x3 -> 254 (14: 1x1)
    rf14 = rf
    p5 = (rf + 2 * j, j)             # 15: Conv 3x3 -> 318, stride 32
    j //= 2                          # 16: 1x1 from 14; 17: upsample -> stride 16; 18: cat with 8 (78 < 254)
    p4 = (max(rf14, rf8) + 2 * j, j)  # 19: Conv 3x3 -> 286, stride 16
    assert (p4, p5) == ((286, 16), (318, 32))

    report = receptive_fields(_graph("yolov3-tiny.yaml"))
    got = [(i, rf[0].size, rf[0].jump) for i, rf in report.detect_inputs]
    assert got == [(19, 286, 16), (15, 318, 32)]


def test_focus_stem_equals_its_6x6_conv() -> None:
    # Focus = space-to-depth (2x2 cells, stride 2) + 3x3 conv on the half grid: 2 + 2*2 = 6, like Conv 6x6 s2.
    rf = receptive_fields(_graph("yolov5s-v5.yaml")).layers[0].rf
    assert (rf[0].size, rf[0].jump) == (6, 2)


def test_detect_input_strides_match_the_model(yolov5n: Model) -> None:
    report = receptive_fields(yolov5n)
    assert [rf[0].jump for _, rf in report.detect_inputs] == yolov5n.stride.tolist()


@pytest.mark.parametrize("layer", [0, 2, 4])
def test_gradient_support_equals_theoretical_field(yolov5n: Model, layer: int) -> None:
    # With random weights every pixel inside the field gets a non-zero gradient and none outside it.
    rf = receptive_fields(yolov5n).layers[layer].rf
    erf = effective_rf(yolov5n, layer, imgsz=128, n=1)
    assert erf.support == tuple(int(v) for v in theoretical_box(rf, erf.unit))


def test_gradient_support_size_of_yolov3_tiny_p4_head() -> None:
    # After nearest upsampling the field's size is exact (its position may shift by half a coarse stride).
    torch.manual_seed(0)
    model = Model("yolov3-tiny.yaml").eval()
    erf = effective_rf(model, 19, imgsz=320, n=1)
    y0, x0, y1, x1 = erf.support
    assert (y1 - y0 + 1, x1 - x0 + 1) == (286, 286)
    assert y0 > 0 and y1 < 319  # not clipped by the image


def test_unknown_spatial_op_is_a_clear_error() -> None:
    with pytest.raises(RFError, match="AdaptiveAvgPool2d|adaptive"):
        apply_module(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1)), (Span(), Span()), "layer 3")


def test_receptive_field_of_the_anchor_free_family_by_hand() -> None:
    # yolov8n: 0 Conv 3x3 s2 -> 3, stride 2; 1 Conv 3x3 s2 -> 3 + 2*2 = 7, stride 4; 2 C2f n=1 (one Bottleneck of
    # two 3x3 convs) -> 7 + 2*4 + 2*4 = 23; 3 Conv 3x3 s2 -> 23 + 2*4 = 31, stride 8; 4 C2f n=2 -> 31 + 4*2*8 = 95.
    report = receptive_fields(_graph("yolov8n.yaml"))
    assert [(r.rf[0].size, r.rf[0].jump) for r in report.layers[:5]] == [(3, 2), (7, 4), (23, 4), (31, 8), (95, 8)]
    assert [rf[0].jump for _, rf in report.detect_inputs] == [8, 16, 32]
    assert [i for i, _ in report.detect_inputs] == [15, 18, 21]
    # yolo11n: C3k2 with c3k False is a C2f (layer 2: 23, as above); C2PSA (layer 10) attends over all positions,
    # so its field and every field after it is the whole input
    report = receptive_fields(_graph("yolo11n.yaml"))
    assert report.layers[2].rf[0].size == 23 and report.layers[9].rf[0].size == 879
    assert all(math.isinf(r.rf[0].size) for r in report.layers[10:-1])
    assert "receptive field global (self-attention upstream), stride 8" in report.table()


def _tool(name: str):
    """Import tools/<name>.py (the scripts are run in-process: a subprocess would re-import torch each time)."""
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["receptive_field", "profile_layers", "feature_maps", "anchor_analysis",
                                  "loss_analysis", "positive_samples"])
def test_tools_have_help(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        _tool(name).main(["--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_receptive_field_tool_writes_table_and_picture(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _tool("receptive_field").main(["--cfg", "yolov3-tiny.yaml", "--imgsz", "128", "--erf-layers", "8",
                                   "--erf-samples", "1", "--project", str(tmp_path)])
    assert "Detect input P0 (layer 19): receptive field 286 px, stride 16" in capsys.readouterr().out
    assert "286" in (tmp_path / "exp" / "receptive_field.txt").read_text()
    _picture_ok(tmp_path / "exp" / "erf_layer8.png")


# ---------------------------------------------------------------- per-layer profile
def test_profile_rows_add_up_to_model_gflops_and_reference(yolov5n: Model) -> None:
    from utils.analysis.profile import profile_rows
    from utils.torch_utils import gflops

    ref = json.loads(shared_path("reference", "yolov5", "models.json").read_text())["models"]["yolov5n"]
    prof = profile_rows(yolov5n, imgsz=320, runs=1)
    assert prof.gflops == pytest.approx(gflops(yolov5n, 320), rel=1e-9)
    # the official figure (4.564 at 640); thop counts scale with the number of pixels
    assert prof.gflops == pytest.approx(ref["gflops_640"] * (320 / 640) ** 2, rel=1e-9)
    assert [r.params for r in prof.rows] == [row[3] for row in ref["layers"]]  # per-row parameters
    assert all(r.ms > 0 for r in prof.rows) and prof.total_ms > 0


def test_profile_tool_writes_table_and_chart(tmp_path: Path) -> None:
    out = _tool("profile_layers").main(["--cfg", "yolov5n.yaml", "--imgsz", "128", "--runs", "1",
                                        "--project", str(tmp_path)])
    text = (out / "profile.txt").read_text()
    assert "1,872,157 parameters" in text and "whole model" in text
    _picture_ok(out / "profile.png")


# ---------------------------------------------------------------- feature maps
def test_feature_maps_capture_row_outputs_and_grid(yolov5n: Model) -> None:
    from utils.analysis.feature_maps import capture, channel_grid

    x = torch.rand(1, 3, 128, 128)
    maps = capture(yolov5n, x, [0, 17])
    with torch.no_grad():
        torch.testing.assert_close(maps[0], yolov5n.model[0](x))
    assert maps[17].shape == (1, 64, 16, 16)
    grid = channel_grid(maps[0][0], k=10, cols=4, pad=1)
    assert grid.shape == (3 * 65 - 1, 4 * 65 - 1)  # 10 channels of 64x64 -> 3 rows of 4
    assert np.isnan(grid[-1, -1]) and np.nanmax(grid) == 1.0 and np.nanmin(grid) == 0.0
    with pytest.raises(ValueError, match="layer 24"):
        capture(yolov5n, x, [24])


def test_feature_maps_tool_on_coco_image(tmp_path: Path) -> None:
    img = shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg")
    out = _tool("feature_maps").main(["--cfg", "yolov5n.yaml", "--source", str(img), "--imgsz", "128",
                                      "--layers", "2", "4", "--k", "8", "--project", str(tmp_path)])
    for i in (2, 4):
        _picture_ok(out / f"layer{i}_features.png")
    assert "shape (64, 16, 16)" in (out / "features.txt").read_text()


# ---------------------------------------------------------------- shared small dataset
COCO_FEW = ("000000000009", "000000000025", "000000000030", "000000000034", "000000000250", "000000000036")


@pytest.fixture(scope="module")
def coco_few(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six coco128 images (000000000250 has no objects) with their labels, copied, and a data YAML for them."""
    import yaml

    src = shared_path("datasets", "coco128")
    root = tmp_path_factory.mktemp("coco_few")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for stem in COCO_FEW:
        shutil.copy(src / "images" / "train2017" / f"{stem}.jpg", root / "images")
        label = src / "labels" / "train2017" / f"{stem}.txt"
        if label.exists():
            shutil.copy(label, root / "labels")
    names = yaml.safe_load((src / "coco128.yaml").read_text())["names"]
    (root / "data.yaml").write_text(yaml.safe_dump({"path": str(root), "train": "images", "val": "images",
                                                    "nc": 80, "names": names}))
    return root / "data.yaml"


# ---------------------------------------------------------------- anchors
def test_anchor_metrics_match_reference_and_kmeans_improves(yolov5n: Model, tmp_path: Path) -> None:
    from utils.analysis.anchors import analyse, plot_anchors
    from utils.autoanchor import dataset_labels

    ref = json.loads(shared_path("reference", "yolov5", "autoanchor.json").read_text())
    dataset = dataset_labels(shared_path("datasets", "coco128", "coco128.yaml"))
    wh, before, after = analyse(yolov5n, dataset, imgsz=640, thr=4.0, gen=100, rng=np.random.default_rng(0))
    assert len(wh) == ref["check_anchors_noscale"]["n_wh"] == 929
    np.testing.assert_allclose(before.anchors.reshape(-1, 2), ref["default_anchors_px"], rtol=1e-6)
    assert before.bpr == pytest.approx(ref["check_anchors_noscale"]["bpr"], abs=1e-6)
    assert before.aat == pytest.approx(ref["check_anchors_noscale"]["anchors_per_target"], abs=1e-5)
    assert sum(aat for _, aat in before.levels) == pytest.approx(before.aat, abs=1e-5)  # levels split the anchors
    assert max(bpr for bpr, _ in before.levels) <= before.bpr
    assert after.bpr > 0.97  # the reference k-means runs reach 0.98-0.99 (statistical, gen=1000)
    areas = after.anchors.reshape(-1, 2).prod(1)
    assert np.all(np.diff(areas) >= 0)
    _picture_ok(plot_anchors(wh, [before, after], tmp_path / "anchors.png"))


@pytest.mark.slow
def test_anchor_tool_writes_picture_and_summary(coco_few: Path, tmp_path: Path) -> None:
    out = _tool("anchor_analysis").main(["--cfg", "yolov5n.yaml", "--data", str(coco_few), "--gen", "20",
                                         "--project", str(tmp_path)])
    text = (out / "anchors.txt").read_text()
    assert text.startswith("15 labels of") and "anchors:" in text  # 8 + 2 + 2 + 1 + 0 + 2 labels
    _picture_ok(out / "anchors.png")


# ---------------------------------------------------------------- loss analysis
HEADER = ("epoch", "train/box_loss", "train/obj_loss", "train/cls_loss", "metrics/precision", "metrics/recall",
          "metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "val/box_loss", "val/obj_loss", "val/cls_loss", "x/lr0", "x/lr1",
          "x/lr2")


def _write_results(path: Path, maps: list[tuple[float, float]]) -> Path:
    """A results.csv the way YOLOv5 writes it (right-aligned, space-padded names and values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(f"{h:>20s}" for h in HEADER)]
    for e, (m50, m5095) in enumerate(maps):
        vals = [e, 0.1 - 0.01 * e, 0.05, 0.04, 0.5, 0.4, m50, m5095, 0.09, 0.04, 0.03, 0.01, 0.01, 0.01]
        lines.append(",".join(f"{v:>20.5g}" for v in vals))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_results_curves_of_two_runs(tmp_path: Path) -> None:
    from utils.analysis.loss_curves import plot_runs, read_results, summary

    a = read_results(_write_results(tmp_path / "exp" / "results.csv", [(0.1, 0.05), (0.3, 0.2), (0.4, 0.15)]))
    b = read_results(_write_results(tmp_path / "exp2" / "results.csv", [(0.2, 0.1), (0.2, 0.1)]))
    assert a.label == "exp" and a.columns["train/box_loss"].tolist() == pytest.approx([0.1, 0.09, 0.08])
    # fitness 0.1 mAP50 + 0.9 mAP50-95: epoch 1 (0.21) beats epoch 2 (0.175)
    text = summary([a, b])
    assert "exp (" in text and "best epoch 1: " in text and "mAP@0.5:0.95 0.2000" in text
    _picture_ok(plot_runs([a, b], tmp_path / "results.png"))


def test_results_errors_name_file_row_and_column(tmp_path: Path) -> None:
    from utils.analysis.loss_curves import read_results

    path = _write_results(tmp_path / "r" / "results.csv", [(0.1, 0.05), (0.2, 0.1)])
    path.write_text(path.read_text().replace("0.05,", "abc,", 1))
    with pytest.raises(ValueError, match=r"results.csv: row 2, column 'train/obj_loss': 'abc'"):
        read_results(path)
    path.write_text("epoch,train/box_loss\n0,1\n")
    with pytest.raises(ValueError, match="missing column"):
        read_results(path)


@pytest.fixture(scope="module")
def yolov5n_official() -> Model:
    from models import load_model

    return load_model(shared_path("weights", "yolov5n.pt"))


def test_per_image_loss_is_independent_of_the_batch(yolov5n_official: Model, coco_few: Path) -> None:
    from utils.analysis.image_loss import loss_hyp, per_image_losses
    from utils.data.dataloaders import create_dataloader
    from utils.hyp import load_hyp
    from utils.loss import ComputeLoss

    loader, _ = create_dataloader(str(coco_few.parent / "images"), 256, 3, 32, workers=0)
    hyp = loss_hyp(load_hyp(REPO / "data" / "hyps" / "hyp.scratch-low.yaml"), yolov5n_official, 256)
    losses = per_image_losses(yolov5n_official, loader, hyp)
    assert len(losses) == len(COCO_FEW)
    assert [e.total for e in losses] == sorted((e.total for e in losses), reverse=True)
    empty = next(e for e in losses if "000000000250" in e.path)
    assert empty.n_labels == 0 and empty.box == 0 and empty.cls == 0 and empty.obj > 0
    # the same image alone (batch of 1) gives the same loss: eval-mode BN, raw outputs
    imgs, targets, paths, _ = next(iter(create_dataloader(losses[0].path, 256, 1, 32, workers=0)[0]))
    with torch.no_grad():
        _, raw = yolov5n_official(imgs.float() / 255)
        _, items = ComputeLoss(yolov5n_official.detect, hyp)(raw, targets)
    assert items.tolist() == pytest.approx([losses[0].box, losses[0].obj, losses[0].cls], rel=1e-4, abs=1e-7)
    assert losses[0].n_labels == len(targets)


def test_loss_tool_curves_and_hardest_images(coco_few: Path, tmp_path: Path) -> None:
    runs = [_write_results(tmp_path / n / "results.csv", [(0.1, 0.05), (0.3, 0.2)]) for n in ("a", "b")]
    out = _tool("loss_analysis").main(["--results", str(runs[0]), str(runs[1].parent), "--cfg", "yolov5n.yaml",
                                       "--data", str(coco_few), "--imgsz", "128", "--batch-size", "6", "--top", "4",
                                       "--project", str(tmp_path / "out")])
    _picture_ok(out / "results.png")
    _picture_ok(out / "hardest.jpg")
    assert len((out / "image_losses.txt").read_text().splitlines()) == 1 + len(COCO_FEW)


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml"])
def test_analysis_tools_on_the_anchor_free_family(cfg: str, tmp_path: Path, capsys) -> None:
    img = shared_path("datasets", "coco128", "images", "train2017", "000000000009.jpg")
    out = _tool("profile_layers").main(["--cfg", cfg, "--imgsz", "64", "--runs", "1", "--project", str(tmp_path / "p")])
    n_params = sum(p.numel() for p in Model(cfg).parameters())
    assert f"{n_params:,} parameters" in (out / "profile.txt").read_text()
    assert "DetectV8" in (out / "profile.txt").read_text()
    _tool("receptive_field").main(["--cfg", cfg, "--imgsz", "64", "--erf-samples", "1", "--project", str(tmp_path / "r")])
    text = capsys.readouterr().out
    assert "Detect input P2" in text and "stride 32" in text
    _picture_ok(next((tmp_path / "r" / "exp").glob("erf_layer*.png")))
    out = _tool("feature_maps").main(["--cfg", cfg, "--source", str(img), "--imgsz", "64", "--layers", "2", "4",
                                      "--k", "4", "--project", str(tmp_path / "f")])
    _picture_ok(out / "layer4_features.png")
    c2 = {"yolov8n.yaml": 32, "yolo11n.yaml": 64}[cfg]  # layer 2: C2f of 128, C3k2 of 256 channels, x 0.25 width
    assert f"shape ({c2}, 16, 16)" in (out / "features.txt").read_text()


# ---------------------------------------------------------------- positive samples
def test_positive_samples_hand_case(yolov5n: Model) -> None:
    from utils.analysis.positive_samples import draw_positives
    from utils.loss import ComputeLoss

    # One 16x30 px target on a 256 px image, centre at P3 grid (10.25, 12.25) = (82, 98) px: in the upper-left
    # quarter of its cell, so it takes its own cell (10, 12), the left one (9, 12) and the upper one (10, 11).
    # Anchor ratios (max of w and h ratios, < 4 passes): P3 10x13 -> 2.31, 16x30 -> 1, 33x23 -> 2.06: all three;
    # P4 30x61 -> 2.03, 62x45 -> 3.88, 59x119 -> 3.97: all three (centre (5.125, 6.125): cells (5,6), (4,6), (5,5));
    # P5 116x90 -> 7.25: none. So 3 anchors x 3 cells = 9 on P3 and on P4, 0 on P5.
    targets = torch.tensor([[0, 2, 82 / 256, 98 / 256, 16 / 256, 30 / 256]])
    preds = [torch.zeros(1, 3, 256 // s, 256 // s, 85) for s in (8, 16, 32)]
    pos = ComputeLoss(yolov5n.detect, {"box": 1, "obj": 1, "cls": 1, "anchor_t": 4.0}).positives(preds, targets)[0]
    assert pos["level"].tolist() == [0] * 9 + [1] * 9 and (pos["gt_index"] == 0).all()
    cells = {(lv, x, y) for lv, (x, y) in zip(pos["level"].tolist(), pos["centers"].tolist())}
    assert cells == {(0, 9.5 * 8, 12.5 * 8), (0, 10.5 * 8, 11.5 * 8), (0, 10.5 * 8, 12.5 * 8),
                     (1, 4.5 * 16, 6.5 * 16), (1, 5.5 * 16, 5.5 * 16), (1, 5.5 * 16, 6.5 * 16)}
    assert sorted(pos["anchor"][:9].tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    imgs = np.full((1, 3, 256, 256), 114, np.uint8)
    mosaic, counts = draw_positives(imgs, targets.numpy(), [pos], [8.0, 16.0, 32.0])
    assert counts.tolist() == [[9, 9, 0]] and mosaic.shape == (256, 3 * 256, 3)
    cell = mosaic[12 * 8 + 4, 9 * 8 + 4]  # inside the left-neighbour cell on the P3 panel: tinted
    assert not np.array_equal(cell, mosaic[30 * 8 + 4, 30 * 8 + 4])


def _coco_batch(coco_few: Path, n: int = 6):
    from utils.data.dataloaders import create_dataloader

    loader, _ = create_dataloader(str(coco_few.parent / "images"), 256, n, 32, workers=0)
    return next(iter(loader))


def test_positive_samples_counts_equal_build_targets(yolov5n: Model, coco_few: Path) -> None:
    from utils.analysis.positive_samples import compute_positives, level_counts
    from utils.hyp import load_hyp
    from utils.loss import ComputeLoss

    hyp = load_hyp(REPO / "data" / "hyps" / "hyp.scratch-low.yaml")
    imgs, targets, paths, _ = _coco_batch(coco_few)
    with torch.no_grad():
        _, preds = yolov5n.eval()(imgs.float() / 255)  # the real raw head outputs, for build_targets' grids
    tcls, _, indices, _ = ComputeLoss(yolov5n.detect, hyp).build_targets(preds, targets)
    positives, strides = compute_positives(yolov5n, imgs.float() / 255, targets, hyp)
    counts = level_counts(positives, 3)
    assert strides == [8.0, 16.0, 32.0] and counts.sum(0).tolist() == [len(ind[0]) for ind in indices]
    for b in range(len(imgs)):
        assert counts[b].tolist() == [int((ind[0] == b).sum()) for ind in indices]
        rows = targets[targets[:, 0] == b]
        for i, pos in enumerate([positives[b]]):  # each pair's box has the class build_targets gives it
            for lv in range(3):
                sel = pos["level"] == lv
                got = sorted(rows[pos["gt_index"][sel], 1].long().tolist())
                assert got == sorted(tcls[lv][indices[lv][0] == b].tolist())
    assert counts.sum() > 0 and counts[[i for i, p in enumerate(paths) if "000000000250" in p]].sum() == 0


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml"])
def test_positive_samples_show_the_tal_assignment(coco_few: Path, cfg: str) -> None:
    """Anchor-free heads: the positives are the assigner's fg anchors of V8DetectionLoss on real images, each an
    anchor point (a cell centre of its level) inside its own box (sides widened to 16 px). Not at most top-k per
    box: a point in the top-k of several boxes goes to the one it overlaps most, even outside that one's top-k."""
    from utils.analysis.positive_samples import compute_positives, draw_positives, legend_text
    from utils.loss_v8 import V8DetectionLoss

    torch.manual_seed(0)
    model = Model(cfg, nc=80).eval()
    imgs, targets, paths, _ = _coco_batch(coco_few, 3)
    x = imgs.float() / 255
    hyp = {"box": 7.5, "cls": 0.5, "dfl": 1.5}
    positives, strides = compute_positives(model, x, targets, hyp)
    with torch.no_grad():
        res, _ = V8DetectionLoss(model.detect, hyp).assign(model(x)[1], targets)
    assert strides == [8.0, 16.0, 32.0]
    assert [len(p["gt_index"]) for p in positives] == res.fg_mask.sum(1).tolist() and res.fg_mask.sum() > 0
    for b, pos in enumerate(positives):
        assert torch.equal(pos["gt_index"], res.target_gt_idx[b][res.fg_mask[b]])
        boxes = targets[targets[:, 0] == b, 2:] * 256
        c, wh = boxes[pos["gt_index"], :2], boxes[pos["gt_index"], 2:].clamp(min=16)
        assert ((pos["centers"] - c).abs() < wh / 2).all()  # strictly inside its (widened) box
        cell = pos["centers"] / torch.tensor(strides)[pos["level"], None] - 0.5  # cell centres of their level
        assert torch.equal(cell, cell.round())
        assert ((pos["score"] > 0) & (pos["score"] <= 1)).all()
    mosaic, counts = draw_positives(imgs.numpy(), targets.numpy(), positives, strides)
    assert counts.sum() == res.fg_mask.sum() and mosaic.shape == (3 * 256, 3 * 256, 3)
    text = legend_text(positives, strides, targets.numpy(), list(paths))
    assert "best score" in text and f"{int(counts[:, 0].sum())} positive pairs" in text


def test_positive_samples_tool(coco_few: Path, tmp_path: Path) -> None:
    for cfg in ("yolov5n.yaml", "yolov8n.yaml"):
        out = _tool("positive_samples").main(["--cfg", cfg, "--data", str(coco_few), "--imgsz", "128",
                                              "--batch-size", "2", "--project", str(tmp_path)])
        _picture_ok(out / "positives.jpg")
        assert "positive pairs in the batch" in (out / "positives.txt").read_text()
