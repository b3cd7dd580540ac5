"""Darknet .cfg -> our model YAML (a dict, or a file a user can read and edit) -> `Model`.

One YAML row per cfg section after [net], so Darknet's layer i is our layer i (routes keep their
Darknet indices: negative = relative, positive = absolute, which is what our `from` means too).
[yolo] sections become `nn.Identity` rows; a last `DarknetDetect` row reads all of them.
Every section and key is checked: an unknown one, a route to a missing layer, or a yolo layer whose
conv has the wrong number of filters raises `DarknetCfgError` naming the file and line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from models.darknet_layers import ACTIVATIONS
from utils.cli import UserFileNotFoundError, UserValueError

SECTION_ALIASES = {"net": "net", "network": "net", "convolutional": "convolutional", "conv": "convolutional",
                   "maxpool": "maxpool", "max": "maxpool", "route": "route", "shortcut": "shortcut",
                   "upsample": "upsample", "yolo": "yolo", "sam": "sam", "scale_channels": "scale_channels"}

# Keys read for inference/structure; training-only keys are accepted and recorded nowhere.
USED_KEYS = {
    "net": {"width", "height", "channels", "letter_box"},
    "convolutional": {"batch_normalize", "filters", "size", "stride", "pad", "padding", "groups", "activation"},
    "maxpool": {"size", "stride", "padding"},
    "route": {"layers", "groups", "group_id"},
    "shortcut": {"from", "activation"},
    "upsample": {"stride"},
    "yolo": {"mask", "anchors", "classes", "num", "scale_x_y", "new_coords", "nms_kind", "beta_nms"},
    "sam": {"from", "activation"},
    "scale_channels": {"from", "activation"},
}
TRAINING_KEYS = {
    "net": {"batch", "subdivisions", "momentum", "decay", "angle", "saturation", "exposure", "hue", "learning_rate",
            "burn_in", "max_batches", "policy", "steps", "scales", "mosaic", "flip", "blur", "gaussian_noise", "mixup",
            "cutmix", "max_chart_loss", "power", "optimized_memory", "workspace_size_limit_mb", "adam", "b1", "b2",
            "eps", "label_smooth_eps", "resize_step", "aspect", "min_crop", "max_crop", "jitter", "random", "step",
            "gamma", "seq_scales", "try_fix_nan", "loss_scale", "dynamic_minibatch", "mosaic_bound", "ema_alpha",
            "time_steps", "track", "augment_speed", "sequential_subdivisions", "init_sequential_subdivisions",
            "use_cuda_graph", "contrastive", "unsupervised", "inputs", "max_batches"},
    "convolutional": set(), "maxpool": set(), "route": set(), "upsample": set(), "sam": set(),
    "shortcut": {"weights_type", "weights_normalization"},
    "scale_channels": set(),
    "yolo": {"jitter", "ignore_thresh", "truth_thresh", "random", "resize", "cls_normalizer", "iou_normalizer",
             "obj_normalizer", "iou_loss", "iou_thresh", "max_delta", "counters_per_class", "label_smooth_eps",
             "objectness_smooth", "max", "focal_loss", "uc_normalizer", "iou_thresh_kind", "delta_normalizer",
             "track_history_size", "sim_thres", "dets_for_track", "dets_for_show", "track_ciou_norm",
             "embedding_layer", "map", "show_details"},
}


# Options the model itself holds (and a writer derives from it); the others are kept as written.
NET_WRITTEN = {"width", "height", "channels"}
YOLO_WRITTEN = {"mask", "anchors", "classes", "num", "scale_x_y", "new_coords"}


class DarknetCfgError(UserValueError):
    """A cfg this converter cannot turn into a model; the message names the file and line."""


@dataclass
class Section:
    """One [section] of a cfg with its key=value options and where each was written."""

    name: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)


def read_cfg(path: str | Path) -> list[Section]:
    """Parse a cfg into sections (Darknet's rules: whitespace removed, '#' / ';' comments, key=value)."""
    path = Path(path)
    if not path.is_file():
        raise UserFileNotFoundError(f"Darknet cfg not found: {path}")
    sections: list[Section] = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                raise DarknetCfgError(f"{path}:{n}: malformed section header {raw.strip()!r}")
            name = line[1:-1].lower()
            if name not in SECTION_ALIASES:
                raise DarknetCfgError(f"{path}:{n}: unknown section [{name}]; supported: "
                                      f"{sorted(set(SECTION_ALIASES.values()))}")
            sections.append(Section(SECTION_ALIASES[name], n))
            continue
        if not sections or "=" not in line:
            raise DarknetCfgError(f"{path}:{n}: expected key=value inside a [section], got {raw.strip()!r}")
        key, value = line.split("=", 1)
        sec, key = sections[-1], key.lower()
        if key not in USED_KEYS[sec.name] | TRAINING_KEYS[sec.name]:
            raise DarknetCfgError(f"{path}:{n}: unknown key '{key}' in [{sec.name}] (section at line {sec.line})")
        sec.options[key], sec.lines[key] = value, n
    if not sections or sections[0].name != "net":
        raise DarknetCfgError(f"{path}: a Darknet cfg must start with a [net] section")
    return sections


class _Reader:
    """Typed access to one section's options with errors naming file and line."""

    def __init__(self, path: Path, sec: Section):
        self.path, self.sec = path, sec

    def where(self, key: str | None = None) -> str:
        return f"{self.path}:{self.sec.lines.get(key, self.sec.line)}: [{self.sec.name}]"

    def fail(self, msg: str, key: str | None = None) -> DarknetCfgError:
        return DarknetCfgError(f"{self.where(key)} {msg}")

    def num(self, key: str, default: Any = None, kind: type = int):
        if key not in self.sec.options:
            if default is None:
                raise self.fail(f"lacks the required key '{key}'")
            return default
        try:
            return kind(self.sec.options[key])
        except ValueError:
            raise self.fail(f"{key}={self.sec.options[key]!r} is not a valid {kind.__name__}", key) from None

    def nums(self, key: str, kind: type = int, default: list | None = None) -> list:
        if key not in self.sec.options:
            if default is None:
                raise self.fail(f"lacks the required key '{key}'")
            return default
        try:
            return [kind(v) for v in self.sec.options[key].split(",") if v != ""]
        except ValueError:
            raise self.fail(f"{key}={self.sec.options[key]!r} is not a list of {kind.__name__}s", key) from None

    def act(self, default: str) -> str:
        a = self.sec.options.get("activation", default).lower()
        if a not in ACTIVATIONS:
            raise self.fail(f"activation '{a}' is not supported (supported: {sorted(ACTIVATIONS)})", "activation")
        return a

    def only_default(self, key: str, default: str) -> None:
        if self.sec.options.get(key, default).lower() != default:
            raise self.fail(f"{key}={self.sec.options[key]} is not supported (only {default})", key)


def cfg_to_yaml(path: str | Path) -> dict:
    """The model dict (Model(dict) builds it) of a Darknet cfg; `darknet:` keeps the [net] input size."""
    path = Path(path)
    sections = read_cfg(path)
    net = _Reader(path, sections[0])
    ch = net.num("channels", 3)
    rows: list[list] = []
    channels: list[int] = []
    yolo: list[dict] = []
    for i, sec in enumerate(sections[1:]):
        r = _Reader(path, sec)
        row, c_out = _section_row(r, i, channels, ch, yolo)
        rows.append(row)
        channels.append(c_out)
    if not yolo:
        raise DarknetCfgError(f"{path}: no [yolo] section: nothing to detect with")
    classes = {y["classes"] for y in yolo}
    if len(classes) != 1:
        raise DarknetCfgError(f"{path}: [yolo] sections disagree on classes: {sorted(classes)}")
    _name_output_convs(rows, yolo)
    head = [[y["index"] for y in yolo], 1, "DarknetDetect",
            ["nc", "anchors", [y["scale_x_y"] for y in yolo], [y["new_coords"] for y in yolo]]]
    return {
        "nc": yolo[0]["classes"],
        "anchors": [y["anchors"] for y in yolo],
        "ch": ch,
        "darknet": {"cfg": path.name, "width": net.num("width", 416), "height": net.num("height", 416),
                    "letter_box": net.num("letter_box", 0), "masks": [y["mask"] for y in yolo],
                    "nms_kind": yolo[0]["nms_kind"], "anchors_all": [y["anchors_all"] for y in yolo],
                    # kept as written so that models/darknet_cfg_writer.py can give them back
                    "net_options": {k: v for k, v in sections[0].options.items() if k not in NET_WRITTEN},
                    "yolo_options": [y["options"] for y in yolo]},
        "backbone": rows,
        "head": [head],
    }


def _name_output_convs(rows: list[list], yolo: list[dict]) -> None:
    """Write the filters of each [yolo] layer's conv as `yolo_filters` (na x (nc + 5)), so nc can change."""
    for y in yolo:
        conv = rows[y["index"] - 1]
        if conv[0] == -1 and conv[2] == "DarknetConv":
            conv[3][0] = "yolo_filters"


def _section_row(r: _Reader, i: int, channels: list[int], ch: int, yolo: list[dict]) -> tuple[list, int]:
    """The YAML row of section i and its output channels."""
    c_prev = channels[-1] if channels else ch
    name = r.sec.name
    if name == "convolutional":
        filters, size, stride = r.num("filters"), r.num("size", 1), r.num("stride", 1)
        pad = size // 2 if r.num("pad", 0) else r.num("padding", 0)
        groups, bn = r.num("groups", 1), bool(r.num("batch_normalize", 0))
        if min(filters, size, stride, groups) < 1 or c_prev % groups or filters % groups:
            raise r.fail(f"filters={filters}, size={size}, stride={stride}, groups={groups} do not fit "
                         f"{c_prev} input channels")
        return [-1, 1, "DarknetConv", [filters, size, stride, pad, groups, bn, r.act("logistic")]], filters
    if name == "maxpool":
        size = r.num("size", 1)
        return [-1, 1, "DarknetMaxPool", [size, r.num("stride", 1), r.num("padding", size - 1)]], c_prev
    if name == "route":
        layers = [_layer_ref(r, x, i, "layers") for x in r.nums("layers")]
        groups, group_id = r.num("groups", 1), r.num("group_id", 0)
        if not 0 <= group_id < groups or any(channels[x] % groups for x in _abs(layers, i)):
            raise r.fail(f"groups={groups}, group_id={group_id} do not split the routed channels "
                         f"{[channels[x] for x in _abs(layers, i)]}", "groups")
        f = layers[0] if len(layers) == 1 else layers
        return [f, 1, "DarknetRoute", [groups, group_id]], sum(channels[x] // groups for x in _abs(layers, i))
    if name in ("shortcut", "sam", "scale_channels"):
        if name == "shortcut":
            r.only_default("weights_type", "none")
        src = _layer_ref(r, r.num("from"), i, "from")
        module = {"shortcut": "DarknetShortcut", "sam": "DarknetSam", "scale_channels": "DarknetScaleChannels"}[name]
        if channels[src] != c_prev:
            raise r.fail(f"from={r.sec.options['from']} has {channels[src]} channels, the previous layer {c_prev}",
                         "from")
        return [[-1, src], 1, module, [r.act("linear")]], channels[src]
    if name == "upsample":
        s = r.num("stride", 2)
        if s < 1:
            raise r.fail(f"stride={s}: only up-sampling (stride >= 1) is supported", "stride")
        return [-1, 1, "nn.Upsample", [None, s, "nearest"]], c_prev
    return _yolo_row(r, i, c_prev, yolo)


def _yolo_row(r: _Reader, i: int, c_prev: int, yolo: list[dict]) -> tuple[list, int]:
    classes, num = r.num("classes", 20), r.num("num", 1)
    all_anchors = r.nums("anchors", float, default=[])
    mask = r.nums("mask", int, default=list(range(num)))
    if len(all_anchors) < 2 * num or any(not 0 <= m < num for m in mask):
        raise r.fail(f"anchors ({len(all_anchors) // 2} pairs), num={num} and mask={mask} do not agree", "mask")
    if c_prev != len(mask) * (classes + 5):
        raise r.fail(f"the previous layer has {c_prev} filters but mask {mask} with classes={classes} needs "
                     f"{len(mask)} x ({classes} + 5) = {len(mask) * (classes + 5)}", "classes")
    if yolo and len(mask) != len(yolo[0]["mask"]):
        raise r.fail(f"mask {mask} uses {len(mask)} anchors but the first [yolo] layer uses {len(yolo[0]['mask'])}: "
                     "every level needs the same number", "mask")
    all_anchors = [int(a) if float(a).is_integer() else a for a in all_anchors[:2 * num]]
    anchors = [a for m in mask for a in all_anchors[2 * m:2 * m + 2]]
    yolo.append({"index": i, "classes": classes, "anchors": anchors, "mask": mask, "anchors_all": all_anchors,
                 "options": {k: v for k, v in r.sec.options.items() if k not in YOLO_WRITTEN},
                 "scale_x_y": r.num("scale_x_y", 1.0, float), "new_coords": r.num("new_coords", 0),
                 "nms_kind": r.sec.options.get("nms_kind", "default").lower()})
    return [-1, 1, "nn.Identity", []], c_prev


def _layer_ref(r: _Reader, x: int, i: int, key: str) -> int:
    """Check that a layer reference (negative relative, else absolute) names an earlier layer; keep it as written."""
    j = i + x if x < 0 else x
    if not 0 <= j < i:
        raise r.fail(f"{key} refers to layer {x} ({j} absolute), which is not an earlier layer of layer {i}", key)
    return x


def _abs(layers: list[int], i: int) -> list[int]:
    return [i + x if x < 0 else x for x in layers]


def write_yaml(d: dict, path: str | Path) -> Path:
    """Write a model dict as a readable YAML: one flow-style row per line, with its layer index."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flow = lambda v: yaml.safe_dump(v, default_flow_style=True, width=1 << 16).strip()  # noqa: E731
    src = d.get("darknet", {}).get("cfg", "a Darknet cfg")
    out = [f"# Generated from {src} by models/darknet_cfg.py: one row per Darknet layer (row i = layer i).",
           "# yolo_filters = anchors per level x (nc + 5): the filters of the conv before each [yolo] layer.",
           f"nc: {d['nc']}", f"ch: {d.get('ch', 3)}", f"anchors: {flow(d['anchors'])}  # pixels, per [yolo] level",
           f"darknet: {flow(d.get('darknet', {}))}", "backbone:"]
    out += [f"  - {flow(row)}  # {i}{' [yolo]' if row[2] == 'nn.Identity' else ''}" for i, row in enumerate(d["backbone"])]
    out += ["head:"] + [f"  - {flow(row)}  # {i + len(d['backbone'])}" for i, row in enumerate(d["head"])]
    path.write_text("\n".join(out) + "\n")
    return path
