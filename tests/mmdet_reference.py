"""The mmdetection 3.3 dense-head reference files (../shared/reference/mmdet/) and our heads loaded from them."""
from __future__ import annotations

import functools

import torch

from tests.shared_data import shared_path

FAMILIES = ("retina", "fcos", "atss", "gfl", "yolox")


@functools.lru_cache(maxsize=None)
def reference(name: str) -> dict:
    return torch.load(shared_path("reference", "mmdet", f"{name}.pt"), weights_only=True)


def loaded_head(name: str, training: bool = True):
    """Our head built from the reference's head_cfg with its state_dict, strides set as a Model sets them."""
    from models.mmdet_import import head_from_mmdet_config, load_mmdet_head

    ref = reference(name)
    head = load_mmdet_head(head_from_mmdet_config(ref["head_cfg"]), ref["state_dict"])
    strides = [s[0] if isinstance(s, (list, tuple)) else s for s in ref["strides"]]
    head.stride.copy_(torch.tensor(strides, dtype=torch.float))
    return head.train(training)
