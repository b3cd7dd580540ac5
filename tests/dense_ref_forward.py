"""Test-only forward passes of the five mmdetection reference heads, written from their state_dict layout.

They exist so the loss math in utils/dense can be checked against the reference's parameter gradients
end to end (outs -> loss -> autograd through these convs). The project's own heads live in models/.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PRED = {"retina": ("retina_cls", "retina_reg", None), "fcos": ("conv_cls", "conv_reg", "conv_centerness"),
        "atss": ("atss_cls", "atss_reg", "atss_centerness"), "gfl": ("gfl_cls", "gfl_reg", None)}


def _tower(x: torch.Tensor, sd: dict, prefix: str, n: int, norm: str | None) -> torch.Tensor:
    for i in range(n):
        p = f"{prefix}.{i}"
        x = F.conv2d(x, sd[f"{p}.conv.weight"], sd.get(f"{p}.conv.bias"), padding=1)
        if norm == "gn":
            x = F.relu(F.group_norm(x, 32, sd[f"{p}.gn.weight"], sd[f"{p}.gn.bias"], eps=1e-5))
        elif norm == "bn_train" or norm == "bn_eval":
            x = F.batch_norm(x, sd[f"{p}.bn.running_mean"].clone(), sd[f"{p}.bn.running_var"].clone(),
                             sd[f"{p}.bn.weight"], sd[f"{p}.bn.bias"], training=norm == "bn_train", momentum=0.03,
                             eps=1e-3)
            x = x * torch.sigmoid(x)
        else:
            x = F.relu(x)
    return x


def forward(name: str, sd: dict, feats: list[torch.Tensor], train: bool = True) -> dict[str, list[torch.Tensor]]:
    """The head's outputs keyed as mmdetection's forward_output_names, from parameters `sd` (tensors)."""
    if name == "yolox":
        return _yolox(sd, feats, "bn_train" if train else "bn_eval")
    cls_name, reg_name, ctr_name = PRED[name]
    norm = None if name == "retina" else "gn"
    out = {"cls_scores": [], "bbox_preds": []}
    if ctr_name:
        out["centernesses"] = []
    for lvl, x in enumerate(feats):
        cls_feat = _tower(x, sd, "cls_convs", 2, norm)
        reg_feat = _tower(x, sd, "reg_convs", 2, norm)
        out["cls_scores"].append(F.conv2d(cls_feat, sd[f"{cls_name}.weight"], sd[f"{cls_name}.bias"], padding=1))
        reg = F.conv2d(reg_feat, sd[f"{reg_name}.weight"], sd[f"{reg_name}.bias"], padding=1)
        if name != "retina":
            reg = reg * sd[f"scales.{lvl}.scale"]
        if name == "fcos":
            reg = reg.exp()
        out["bbox_preds"].append(reg)
        if ctr_name:
            src = cls_feat if name == "fcos" else reg_feat  # FCOS: centerness off the cls tower (centerness_on_reg)
            out["centernesses"].append(F.conv2d(src, sd[f"{ctr_name}.weight"], sd[f"{ctr_name}.bias"], padding=1))
    return out


def _yolox(sd: dict, feats: list[torch.Tensor], norm: str) -> dict[str, list[torch.Tensor]]:
    out = {"cls_scores": [], "bbox_preds": [], "objectnesses": []}
    for lvl, x in enumerate(feats):
        cls_feat = _tower(x, sd, f"multi_level_cls_convs.{lvl}", 2, norm)
        reg_feat = _tower(x, sd, f"multi_level_reg_convs.{lvl}", 2, norm)
        for key, src, conv in (("cls_scores", cls_feat, "cls"), ("bbox_preds", reg_feat, "reg"),
                               ("objectnesses", reg_feat, "obj")):
            p = f"multi_level_conv_{conv}.{lvl}"
            out[key].append(F.conv2d(src, sd[f"{p}.weight"], sd[f"{p}.bias"]))
    return out
