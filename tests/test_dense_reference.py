"""utils/dense against mmdetection 3.3's own outputs (../shared/reference/mmdet, see its README): priors,
assignments, FCOS targets, loss items per key and level, parameter gradients and predictions, per head."""
from __future__ import annotations

import pytest
import torch

from tests.dense_ref_forward import forward
from tests.shared_data import shared_path
from utils.dense.families import build_family
from utils.dense.simota_assigner import SimOTAAssigner
from utils.dense.yolox import YOLOXMath

HEADS = ("retina", "fcos", "atss", "gfl", "yolox")
CASES = [(h, c) for h in HEADS for c in ("a", "b")] + [("yolox", "a_l1")]


@pytest.fixture(scope="module")
def ref():
    """Loader of the reference files, each read once per module."""
    cache: dict = {}

    def load(name: str) -> dict:
        if name not in cache:
            cache[name] = torch.load(shared_path("reference", "mmdet", f"{name}.pt"), weights_only=True)
        return cache[name]

    return load


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-7, what: str = "") -> None:
    torch.testing.assert_close(actual.detach().float(), expected.float(), rtol=rtol, atol=atol,
                               msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("name", HEADS)
def test_priors_every_level(name, ref):
    d = ref(name)
    math = build_family(d["head_cfg"])
    priors = math.priors(d["featmap_sizes"])
    assert len(priors) == len(d["priors"]) == len(d["strides"])
    for lvl, (p, r) in enumerate(zip(priors, d["priors"])):
        assert p.shape == r.shape and torch.equal(p, r), f"{name} level {lvl}"
    assert math.strides == d["strides"]
    if "priors_with_stride" in d:
        for p, r in zip(math.priors(d["featmap_sizes"], with_stride=True), d["priors_with_stride"]):
            assert torch.equal(p, r)
    else:
        pg = d["prior_generator"]
        assert math.prior_generator.num_base_priors == pg["num_base_priors"]
        assert math.prior_generator.base_sizes == pg["base_sizes"]
        close(math.prior_generator.scales, pg["scales"], rtol=0, atol=0)
        for a, b in zip(math.prior_generator.base_anchors, pg["base_anchors"]):
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["retina", "atss", "gfl", "yolox"])
def test_assign_every_field(name, ref):
    d = ref(name)
    math = build_family(d["head_cfg"])
    gt = d["loss"]["a"]
    results = math.assign(d["outs"], gt["gt_bboxes"], gt["gt_labels"], d["img_size"])
    assert len(results) == len(d["assign"]) == 2
    for i, (res, r) in enumerate(zip(results, d["assign"])):
        assert res.num_gts == r["num_gts"]
        assert res.gt_inds.dtype == torch.long and torch.equal(res.gt_inds, r["gt_inds"]), f"image {i}"
        assert torch.equal(res.labels, r["labels"]), f"image {i}"
        close(res.max_overlaps, r["max_overlaps"], what=f"{name} image {i} max_overlaps")
        if "num_priors" in r:
            assert res.num_priors == r["num_priors"]
    if name == "retina":  # the README's counts: positives and ignored anchors per image
        assert [int((res.gt_inds > 0).sum()) for res in results] == [88, 169]
        assert [int((res.gt_inds == -1).sum()) for res in results] == [233, 273]


def test_atss_assigner_gets_level_counts(ref):
    d = ref("atss")
    math = build_family(d["head_cfg"])
    anchors = math.priors(d["featmap_sizes"])
    assert [a.size(0) for a in anchors] == d["assign"][0]["num_level_priors"]


def test_yolox_assigner_inputs_and_simota_alone(ref):
    """The priors (offset +0.5 stride), decoded boxes and sqrt scores SimOTA receives, and SimOTA on them."""
    d = ref("yolox")
    math: YOLOXMath = build_family(d["head_cfg"])
    priors, cls, reg, obj = math._flatten(d["outs"])
    boxes = math.decode(priors, reg)
    assigner = SimOTAAssigner(**{k: v for k, v in d["effective_settings"]["assigner"].items()
                                 if k in ("center_radius", "candidate_topk", "iou_weight", "cls_weight")})
    for i, r in enumerate(d["assign"]):
        offset = torch.cat([priors[:, :2] + priors[:, 2:] * 0.5, priors[:, 2:]], dim=-1)
        assert torch.equal(offset, r["priors"])
        close(boxes[i], r["bboxes"], what="decoded boxes")
        close((cls[i].sigmoid() * obj[i].unsqueeze(1).sigmoid()).sqrt(), r["scores"], what="scores")
        gt = d["loss"]["a"]
        res = assigner.assign(r["priors"], r["bboxes"], r["scores"], gt["gt_bboxes"][i], gt["gt_labels"][i])
        assert torch.equal(res.gt_inds, r["gt_inds"]) and torch.equal(res.labels, r["labels"])
        close(res.max_overlaps, r["max_overlaps"], what="max_overlaps")
        assert int((res.gt_inds > 0).sum()) == [3, 5][i]


def test_fcos_targets_every_field(ref):
    d = ref("fcos")
    math = build_family(d["head_cfg"])
    gt = d["loss"]["a"]
    points, targets = math.targets(d["featmap_sizes"], gt["gt_bboxes"], gt["gt_labels"])
    ranges = math.target_assigner.expanded_ranges(points)
    for i, (t, r) in enumerate(zip(targets, d["assign"])):
        assert torch.equal(torch.cat(points), r["points"])
        assert torch.equal(ranges, r["regress_ranges"])
        assert [p.size(0) for p in points] == r["num_points_per_lvl"]
        assert torch.equal(t.labels, r["labels"]), f"image {i}"
        close(t.bbox_targets, r["bbox_targets"], what="bbox_targets")
        assert torch.equal(t.gt_inds, r["gt_inds"])
    assert [int((t.labels < 3).sum()) for t in targets] == [148, 188]
    results = math.assign(d["outs"], gt["gt_bboxes"], gt["gt_labels"], d["img_size"])
    assert all(torch.equal(res.gt_inds, r["gt_inds"]) for res, r in zip(results, d["assign"]))


def _losses(d: dict, case: str, outs: dict) -> dict:
    math = build_family(d["head_cfg"])
    math.use_l1 = case == "a_l1"
    gt = d["loss"][case]
    return math.loss_by_feat(outs, gt["gt_bboxes"], gt["gt_labels"], d["img_size"])


def _total(losses: dict) -> torch.Tensor:
    return sum(sum(v) if isinstance(v, list) else v for v in losses.values())


@pytest.mark.parametrize("name,case", CASES)
def test_loss_items_per_key_and_level(name, case, ref):
    d = ref(name)
    expected = d["loss"][case]
    assert expected["ok"]
    losses = _losses(d, case, d["outs"])
    assert list(losses) == list(expected["losses"])
    for key, want in expected["losses"].items():
        got = losses[key]
        if isinstance(want, list):
            assert isinstance(got, list) and len(got) == len(want), key
            for lvl, (g, w) in enumerate(zip(got, want)):
                close(g.reshape(()), w, what=f"{name} {case} {key} level {lvl}")
        else:
            assert torch.is_tensor(got) and got.dim() == 0, key
            close(got, want, what=f"{name} {case} {key}")
    close(_total(losses), expected["loss_sum"], what="loss_sum")


@pytest.mark.parametrize("name,case", CASES)
def test_parameter_gradients(name, case, ref):
    """d loss_sum / d every head parameter, through a test-only forward of the reference head (one thread, as
    the reference was made), against mmdetection's: within 1e-5 of each tensor's largest gradient."""
    d = ref(name)
    grads = d["loss"][case]["grads"]
    sd = {k: v.clone().requires_grad_(k in grads) for k, v in d["state_dict"].items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outs = forward(name, sd, d["feats"])
        for key in d["outs"]:
            for lvl, (o, r) in enumerate(zip(outs[key], d["outs"][key])):
                close(o, r, rtol=1e-5, atol=1e-5, what=f"test forward {key} level {lvl}")
        _total(_losses(d, case, outs)).backward()
    finally:
        torch.set_num_threads(threads)
    assert sorted(grads) == sorted(k for k, v in sd.items() if v.requires_grad)
    for key, want in grads.items():
        got = sd[key].grad
        assert got is not None, key
        err = float((got - want).abs().max())
        assert err <= 1e-5 * float(want.abs().max()) + 1e-12, f"{name} {case} {key}: max error {err:.3g}"


@pytest.mark.parametrize("name", HEADS)
def test_predictions(name, ref):
    d = ref(name)
    math = build_family(d["head_cfg"])
    outs = d.get("outs_eval", d["outs"])
    preds = math.predict_by_feat(outs, d["img_size"], d["predict_test_cfg"])
    p = d["predict"]
    assert len(preds) == len(p["bboxes"])
    for i, (boxes, scores, labels) in enumerate(preds):
        assert boxes.shape == p["bboxes"][i].shape and scores.shape == p["scores"][i].shape, f"image {i}"
        assert labels.dtype == torch.long
        top = 50  # the low-score tail near the nms_pre cut is sensitive to float noise (README)
        close(scores[:top], p["scores"][i][:top], atol=1e-6, what="scores")
        close(boxes[:top], p["bboxes"][i][:top], atol=1e-4, what="boxes")
        assert torch.equal(labels[:top], p["labels"][i][:top])
        close(scores.sort().values, p["scores"][i].sort().values, atol=1e-6, what="all scores")
    expected_counts = [1344, 1344] if name == "yolox" else [100, 100]
    assert [len(s) for _, s, _ in preds] == expected_counts


def test_yolox_eval_forward_of_test_stack(ref):
    """The test-only forward in eval mode gives the reference's outs_eval (initial BN statistics)."""
    d = ref("yolox")
    outs = forward("yolox", dict(d["state_dict"]), d["feats"], train=False)
    for key in d["outs_eval"]:
        for o, r in zip(outs[key], d["outs_eval"][key]):
            close(o, r, atol=1e-5)


@pytest.mark.parametrize("name", HEADS)
def test_effective_settings_match_mmdetection(name, ref):
    """The parts built from head_cfg carry mmdetection's effective settings, class defaults included."""
    d = ref(name)
    math = build_family(d["head_cfg"])
    eff = d["effective_settings"]
    compared = 0
    for attr in ("bbox_coder", "loss_cls", "loss_bbox", "loss_centerness", "loss_dfl", "loss_obj", "loss_l1",
                 "assigner"):
        if attr not in eff:
            continue
        part = getattr(math, attr)
        assert type(part).__name__ == eff[attr]["class"], attr
        for key, want in eff[attr].items():
            if key in ("class", "use_box_type", "iou_calculator", "gpu_assign_thr", "perm_repeat_gt_cfg"):
                continue
            got = getattr(part, key)
            want = want.tolist() if torch.is_tensor(want) else want
            assert got == want or (isinstance(want, list) and list(got) == want), f"{attr}.{key}: {got!r} != {want!r}"
            compared += 1
    head_attrs = {"reg_max": lambda: math.reg_max, "norm_on_bbox": lambda: math.norm_on_bbox,
                  "reg_decoded_bbox": lambda: math.reg_decoded_bbox, "use_l1": lambda: math.use_l1,
                  "num_classes": lambda: math.num_classes,
                  "regress_ranges": lambda: [list(r) for r in math.target_assigner.regress_ranges],
                  "center_sampling": lambda: math.target_assigner.center_sampling}
    for key, get in head_attrs.items():
        if key in eff:
            assert get() == eff[key], key
            compared += 1
    if "center_sample_radius" in eff:
        assert math.target_assigner.center_sample_radius == eff["center_sample_radius"]
    if "integral_project" in eff:
        assert torch.equal(torch.linspace(0, math.reg_max, math.reg_max + 1), eff["integral_project"])
    if "num_base_priors" in eff:
        assert math.num_base_priors == eff["num_base_priors"]
    assert compared >= 10
