"""The dense part registry and the head configs: YAML specs build parts; bad names and values name the file/key."""
from __future__ import annotations

import pytest

from utils.cli import UserKeyError, UserValueError
from utils.dense.atss import ATSSMath
from utils.dense.families import FAMILIES, build_family
from utils.dense.fcos import FCOSMath
from utils.dense.gfl import GFLMath
from utils.dense.head_config import merge_cfg
from utils.dense.registry import PARTS, KINDS, PartKeyError, PartRegistry, PartValueError, build_part, register_part
from utils.dense.retina import RetinaMath
from utils.dense.yolox import YOLOXMath

WHERE = "models/retinanet-r18.yaml: head_cfg.train_cfg.assigner"


def test_every_kind_builds_by_name_with_parameters():
    assert build_part("assigner", {"type": "ATSSAssigner", "topk": 9}, WHERE).topk == 9
    assert build_part("assigner", {"type": "SimOTAAssigner", "center_radius": 2}, WHERE).center_radius == 2.0
    gen = build_part("prior_generator", {"type": "AnchorGenerator", "strides": [8, 16], "ratios": [1.0],
                                         "octave_base_scale": 8, "scales_per_octave": 1}, "x")
    assert gen.num_base_priors == [1, 1]
    coder = build_part("bbox_coder", {"type": "DeltaXYWHBBoxCoder", "target_stds": [0.1, 0.1, 0.2, 0.2]}, "x")
    assert coder.stds[3] == 0.2
    assert build_part("loss", {"type": "IoULoss", "mode": "square", "eps": 1e-16}, "x").mode == "square"
    assert build_part("sampler", {"type": "PseudoSampler"}, "x") is not None
    for kind in KINDS:
        assert PARTS.names(kind)
    assert set(PARTS.names("loss")) == {"FocalLoss", "QualityFocalLoss", "DistributionFocalLoss", "IoULoss",
                                        "GIoULoss", "L1Loss", "SmoothL1Loss", "CrossEntropyLoss"}


def test_unknown_type_names_where_and_the_known_names():
    with pytest.raises(PartKeyError) as e:
        build_part("assigner", {"type": "ATSSAsigner", "topk": 9}, WHERE)
    msg = str(e.value)
    assert msg.startswith(f"{WHERE}.type: unknown assigner 'ATSSAsigner'")
    assert "did you mean ATSSAssigner" in msg and "MaxIoUAssigner" in msg and "SimOTAAssigner" in msg
    assert isinstance(e.value, UserKeyError)


def test_unknown_and_missing_parameters():
    with pytest.raises(PartKeyError) as e:
        build_part("assigner", {"type": "ATSSAssigner", "top_k": 9}, WHERE)
    assert str(e.value).startswith(f"{WHERE}.top_k: unknown parameter of ATSSAssigner; did you mean topk?")
    assert "parameters: topk, alpha, ignore_iof_thr" in str(e.value)
    with pytest.raises(PartKeyError, match=r"ATSSAssigner needs topk"):
        build_part("assigner", {"type": "ATSSAssigner"}, WHERE)
    with pytest.raises(PartKeyError, match=r"has no 'type'"):
        build_part("loss", {"loss_weight": 1.0}, "x.yaml: head_cfg.loss_cls")
    with pytest.raises(PartValueError, match=r"is a mapping"):
        build_part("loss", "FocalLoss", "x.yaml: head_cfg.loss_cls")


def test_bad_values_name_the_parameter():
    with pytest.raises(PartValueError) as e:
        build_part("assigner", {"type": "ATSSAssigner", "topk": "nine"}, WHERE)
    assert str(e.value) == f"{WHERE}.topk: expected int, got 'nine'"
    assert isinstance(e.value, UserValueError)
    with pytest.raises(PartValueError, match=r"\.gamma: expected float, got True"):
        build_part("loss", {"type": "FocalLoss", "gamma": True}, "x")
    with pytest.raises(PartValueError, match=r"\.ratios: expected list\[float\]"):
        build_part("prior_generator", {"type": "AnchorGenerator", "strides": [8], "ratios": [1, "a"],
                                       "scales": [1.0]}, "x")
    with pytest.raises(PartValueError, match=r"^x: bad ATSSAssigner parameters: topk must be a positive int"):
        build_part("assigner", {"type": "ATSSAssigner", "topk": 0}, "x")
    with pytest.raises(PartValueError, match=r"mode 'cube'"):
        build_part("loss", {"type": "IoULoss", "mode": "cube"}, "x")
    with pytest.raises(PartValueError, match=r"reduction"):
        build_part("loss", {"type": "L1Loss", "reduction": "avg"}, "x")


def test_register_part_and_duplicates():
    reg = PartRegistry()
    reg.add("assigner", RetinaMath, "MyAssigner")
    with pytest.raises(KeyError, match="already registered"):
        reg.add("assigner", RetinaMath, "MyAssigner")
    with pytest.raises(KeyError, match="kinds"):
        reg.add("matcher", RetinaMath)
    with pytest.raises(KeyError, match="already registered"):
        register_part("loss")(type("FocalLoss", (), {}))


def test_merge_rule():
    default = {"assigner": {"type": "ATSSAssigner", "topk": 9}, "pos_weight": -1}
    assert merge_cfg(default, {"assigner": {"topk": 5}}) == {"assigner": {"type": "ATSSAssigner", "topk": 5},
                                                             "pos_weight": -1}
    replaced = merge_cfg(default, {"assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4}})
    assert replaced["assigner"] == {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4}
    assert default["assigner"]["topk"] == 9  # defaults untouched


def test_family_defaults_and_overrides():
    for cls, head in ((RetinaMath, "RetinaHead"), (FCOSMath, "FCOSHead"), (ATSSMath, "ATSSHead"),
                      (GFLMath, "GFLHead"), (YOLOXMath, "YOLOXHead")):
        assert FAMILIES[head] is cls
        math = build_family({"type": head, "num_classes": 3, "in_channels": 32, "stacked_convs": 2})
        assert isinstance(math, cls) and math.num_classes == 3
    retina = RetinaMath({"num_classes": 2})
    assert retina.num_base_priors == 9 and retina.strides == [8, 16, 32, 64, 128]
    assert type(retina.loss_cls).__name__ == "FocalLoss" and retina.test_cfg["nms"]["iou_threshold"] == 0.5
    maxiou_atss = ATSSMath({"train_cfg": {"assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5,
                                                       "neg_iou_thr": 0.4}}})
    assert type(maxiou_atss.assigner).__name__ == "MaxIoUAssigner"
    assert GFLMath({"reg_max": 7}).reg_max == 7
    assert YOLOXMath().prior_generator.offset == 0 and FCOSMath().prior_generator.offset == 0.5


def test_family_config_errors_name_the_key():
    where = "models/retinanet-r18.yaml: head_cfg"
    with pytest.raises(UserKeyError, match=r"^models/retinanet-r18.yaml: head_cfg.assigner: unknown RetinaHead config"):
        RetinaMath({"assigner": {"type": "MaxIoUAssigner"}}, where)
    with pytest.raises(PartValueError, match=r"head_cfg.train_cfg.assigner.pos_iou_thr: expected float, got 'high'"):
        RetinaMath({"train_cfg": {"assigner": {"pos_iou_thr": "high"}}}, where)
    with pytest.raises(PartValueError, match=r"head_cfg.train_cfg.assigner.type: this head cannot use SimOTAAssigner"):
        RetinaMath({"train_cfg": {"assigner": {"type": "SimOTAAssigner"}}}, where)
    with pytest.raises(PartValueError, match=r"cannot use ATSSAssigner"):
        YOLOXMath({"train_cfg": {"assigner": {"type": "ATSSAssigner", "topk": 9}}}, where)
    with pytest.raises(UserKeyError, match=r"head_cfg.test_cfg.nms_post: unknown test_cfg key"):
        RetinaMath({"test_cfg": {"nms_post": 5}}, where)
    with pytest.raises(UserValueError, match=r"head_cfg.test_cfg.nms.iou_threshold: must be a number in \[0, 1\]"):
        ATSSMath({"test_cfg": {"nms": {"iou_threshold": 1.5}}}, where)
    with pytest.raises(UserValueError, match=r"head_cfg.test_cfg.nms: must be"):
        ATSSMath({"test_cfg": {"nms": {"type": "soft_nms", "iou_threshold": 0.5}}}, where)
    with pytest.raises(UserValueError, match=r"head_cfg.test_cfg.max_per_img: must be an integer"):
        GFLMath({"test_cfg": {"max_per_img": "all"}}, where)
    with pytest.raises(UserValueError, match=r"head_cfg.reg_max: must be an integer >= 1"):
        GFLMath({"reg_max": 0}, where)
    with pytest.raises(UserValueError, match=r"head_cfg.num_classes: must be an integer >= 1"):
        FCOSMath({"num_classes": 0}, where)
    with pytest.raises(UserValueError, match=r"head_cfg.type: this is the FCOSHead config, got type 'ATSSHead'"):
        FCOSMath({"type": "ATSSHead"}, where)
    with pytest.raises(UserKeyError, match=r"head_cfg.train_cfg.assigner: unknown FCOS train_cfg"):
        FCOSMath({"train_cfg": {"assigner": {"type": "ATSSAssigner", "topk": 9}}}, where)
    with pytest.raises(PartValueError, match=r"head_cfg.regress_ranges: .*5 regress_ranges for 3 strides"):
        FCOSMath({"strides": [8, 16, 32]}, where)
    with pytest.raises(UserValueError, match=r"head_cfg.center_sampling: must be true or false"):
        FCOSMath({"center_sampling": "yes"}, where)
    with pytest.raises(PartKeyError, match=r"head_cfg.loss_bbox.type: unknown loss 'DIoULoss'"):
        ATSSMath({"loss_bbox": {"type": "DIoULoss"}}, where)
    with pytest.raises(UserKeyError, match=r"head_cfg.type: unknown dense head 'PAAHead'; known: RetinaHead"):
        build_family({"type": "PAAHead"}, where)


def test_loss_names_and_items():
    import torch

    from utils.dense.loss_items import loss_items, total_loss

    assert RetinaMath().LOSS_NAMES == ("loss_cls", "loss_bbox")
    yolox = YOLOXMath()
    assert yolox.LOSS_NAMES == ("loss_cls", "loss_bbox", "loss_obj")
    yolox.use_l1 = True
    assert yolox.LOSS_NAMES[-1] == "loss_l1"
    losses = {"loss_cls": [torch.tensor(1.0), torch.tensor(2.0)], "loss_obj": torch.tensor(0.5)}
    assert float(total_loss(losses)) == 3.5 and loss_items(losses) == {"loss_cls": 3.0, "loss_obj": 0.5}


def test_numbers_yaml_reads_as_text_get_a_hint():
    with pytest.raises(PartValueError, match=r"loss_bbox.eps: expected float, got '1e-16' \(YAML reads 1e-16 as text; "
                                             r"write 1.0e-16"):
        YOLOXMath({"loss_bbox": {"eps": "1e-16"}}, "m.yaml: head_cfg")
    ranges = [[-1, 64], [64, 128], [128, 256], [256, 512], [512, "1e8"]]
    with pytest.raises(PartValueError, match=r"head_cfg.regress_ranges: .*write 1.0e\+8"):
        FCOSMath({"regress_ranges": ranges}, "m.yaml: head_cfg")


def test_output_channels_and_shape_errors():
    import torch

    retina, gfl, yolox = RetinaMath({"num_classes": 3}), GFLMath({"num_classes": 3}), YOLOXMath({"num_classes": 3})
    assert retina.output_channels == {"cls_scores": 27, "bbox_preds": 36}
    assert gfl.output_channels == {"cls_scores": 3, "bbox_preds": 68}
    assert ATSSMath({"num_classes": 3}).output_channels == {"cls_scores": 3, "bbox_preds": 4, "centernesses": 1}
    assert yolox.output_channels == {"cls_scores": 3, "bbox_preds": 4, "objectnesses": 1}
    sizes = [(8, 8), (4, 4), (2, 2)]
    outs = {"cls_scores": [torch.zeros(2, 3, *s) for s in sizes], "bbox_preds": [torch.zeros(2, 4, *s) for s in sizes]}
    with pytest.raises(ValueError, match=r"YOLOXHead outputs need \['cls_scores', 'bbox_preds', 'objectnesses'\]"):
        yolox.loss_by_feat(outs, [torch.zeros(0, 4)] * 2, [torch.zeros(0, dtype=torch.long)] * 2, 64)
    outs["objectnesses"] = [torch.zeros(2, 1, *s) for s in sizes]
    outs["bbox_preds"][2] = torch.zeros(2, 5, 2, 2)
    with pytest.raises(ValueError, match=r"outputs\['bbox_preds'\]\[2\] is \(2, 5, 2, 2\); expected \(2, 4, 2, 2\)"):
        yolox.predict_by_feat(outs, 64)
    with pytest.raises(ValueError, match=r"RetinaHead outputs\['cls_scores'\] has 3 levels; the head has 5"):
        retina.assign({"cls_scores": outs["cls_scores"], "bbox_preds": outs["bbox_preds"]}, [], [], 64)


def test_half_precision_outputs_are_lossed_in_float32():
    import torch

    math = ATSSMath({"num_classes": 2, "anchor_generator": {"strides": [8, 16]}})
    sizes = [(4, 4), (2, 2)]
    outs = {"cls_scores": [torch.randn(1, 2, *s) for s in sizes],
            "bbox_preds": [torch.randn(1, 4, *s) * 0.1 for s in sizes],
            "centernesses": [torch.randn(1, 1, *s) for s in sizes]}
    gt, lab = [torch.tensor([[4.0, 4.0, 28.0, 20.0]])], [torch.tensor([1])]
    full = math.loss_by_feat(outs, gt, lab, 32)
    half = {k: [m.half().requires_grad_(True) for m in v] for k, v in outs.items()}
    losses = math.loss_by_feat(half, gt, lab, 32)
    assert all(x.dtype == torch.float32 for v in losses.values() for x in v)
    sum(sum(v) for v in losses.values()).backward()
    assert half["cls_scores"][0].grad is not None
    torch.testing.assert_close(sum(full["loss_cls"]), sum(losses["loss_cls"]), rtol=1e-2, atol=1e-3)
