"""A Darknet-layout model -> a Darknet .cfg: the inverse of models/darknet_cfg.cfg_to_yaml.

The structure comes from the model's YAML rows (one row per Darknet layer), the numbers that training can
change from the model itself: the class count, the filters of each [yolo] layer's conv and the anchors.
Options the model does not use ([net] training settings, [yolo] loss settings) are written back as the
original cfg had them (cfg_to_yaml keeps them under `darknet:`).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch.nn as nn

LOGGER = logging.getLogger("yolo")


def _num(x: float) -> str:
    """A number as Darknet reads it back: integers plain, floats in the shortest float32 form."""
    x = float(x)
    return str(int(x)) if x.is_integer() else np.format_float_positional(np.float32(x), trim="-")


def _nums(xs) -> str:
    return ",".join(_num(x) for x in xs)


def _section(name: str, options: dict) -> str:
    return "\n".join([f"[{name}]"] + [f"{k}={v}" for k, v in options.items()])


def anchor_table(model: nn.Module) -> tuple[list[list[float]], list[list[int]]]:
    """Per [yolo] level: (its `anchors=` list, its mask). The cfg's own lists when the model still uses its
    anchors; otherwise (AutoAnchor changed them) every level's current anchors in one list, masks renumbered."""
    head, meta = model.detect, model.yaml["darknet"]
    current = (head.anchors * head.stride.view(-1, 1, 1)).view(head.nl, -1).tolist()
    table, masks = meta.get("anchors_all"), meta["masks"]
    if table and all(np.allclose(cur, [table[lv][2 * m + k] for m in mask for k in (0, 1)], rtol=0, atol=1e-4)
                     for lv, (cur, mask) in enumerate(zip(current, masks))):
        return [list(t) for t in table], [list(m) for m in masks]
    why = "changed since conversion" if table else "have no cfg anchor table in this checkpoint"
    LOGGER.info(f"Darknet cfg: the anchors {why}; writing the current ones, masks renumbered")
    flat = [a for level in current for a in level]
    return [flat] * head.nl, [list(range(lv * head.na, (lv + 1) * head.na)) for lv in range(head.nl)]


def model_to_cfg(model: nn.Module) -> str:
    """The .cfg text of a model built from a Darknet cfg (its YAML has the `darknet:` key)."""
    d = getattr(model, "yaml", {})
    if "darknet" not in d:
        raise ValueError("only a model converted from a Darknet cfg can be written as one "
                         "(its YAML has no `darknet:` key)")
    meta, head = d["darknet"], model.detect
    net = {"width": meta["width"], "height": meta["height"], "channels": d.get("ch", 3), **meta.get("net_options", {})}
    out = [_section("net", net)]
    anchors, masks = anchor_table(model)
    yolo_options = meta.get("yolo_options") or [{}] * head.nl
    level = 0
    for i, (m, row) in enumerate(zip(model.model[:-1], d["backbone"] + d["head"][:-1])):
        if row[2] == "nn.Identity":  # a [yolo] layer
            out.append(_section("yolo", {
                "mask": _nums(masks[level]), "anchors": _nums(anchors[level]), "classes": head.nc,
                "num": len(anchors[level]) // 2, "scale_x_y": _num(head.scale_x_y[level]),
                "new_coords": head.new_coords[level], **yolo_options[level]}))
            level += 1
        else:
            out.append(_layer_section(i, m, row))
    return "\n\n".join(out) + "\n"


def _layer_section(i: int, m: nn.Module, row: list) -> str:
    """One non-[yolo] layer: the section cfg_to_yaml read it from."""
    f, _, name, args = row
    if name == "DarknetConv":
        conv = m.conv
        k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        opts = {"batch_normalize": 1} if args[5] else {}
        opts |= {"filters": conv.out_channels, "size": k, "stride": s}
        opts |= {"pad": 1} if p == k // 2 else {"padding": p}
        opts |= ({"groups": conv.groups} if conv.groups > 1 else {}) | {"activation": args[6]}
        return _section("convolutional", opts)
    if name == "DarknetMaxPool":
        total = m.pad[0] + m.pad[1]
        return _section("maxpool", {"size": m.k, "stride": m.s, **({"padding": total} if total != m.k - 1 else {})})
    if name == "DarknetRoute":
        groups = {"groups": args[0], "group_id": args[1]} if args[0] > 1 else {}
        return _section("route", {"layers": _nums(f if isinstance(f, list) else [f]), **groups})
    if name in ("DarknetShortcut", "DarknetSam", "DarknetScaleChannels"):
        section = {"DarknetShortcut": "shortcut", "DarknetSam": "sam", "DarknetScaleChannels": "scale_channels"}[name]
        return _section(section, {"from": f[1], "activation": args[0]})
    if name == "nn.Upsample":
        return _section("upsample", {"stride": _num(args[1])})
    raise ValueError(f"layer {i} ({name}) has no Darknet section; only rows written by cfg_to_yaml can be")


def write_cfg(model: nn.Module, path: str | Path) -> Path:
    """Write model_to_cfg(model) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model_to_cfg(model))
    return path
