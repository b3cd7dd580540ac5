"""Shared bits of the analysis tools: the model to analyse, the output folder, one image as a tensor."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from utils.cli import UserFileNotFoundError, UserValueError

LOGGER = logging.getLogger("yolo.analysis")


def analysis_model(cfg: str | None = None, weights: str | None = None, nc: int | None = None, seed: int = 0):
    """A Model in eval mode: from a checkpoint (`weights`) or freshly initialised (seeded) from a YAML (`cfg`)."""
    if bool(cfg) == bool(weights):
        raise UserValueError("give exactly one of --cfg (a model YAML) or --weights (a checkpoint)")
    if weights:
        from models import load_model
        if not Path(weights).is_file():
            raise UserFileNotFoundError(f"--weights {weights}: no such file")
        return load_model(weights)
    from models.build import model_from_cfg
    torch.manual_seed(seed)
    return model_from_cfg(cfg, nc=nc).eval()


def add_model_args(p: argparse.ArgumentParser, cfg_help: str = "model YAML (path or name in models/)",
                   weights_help: str = "checkpoint instead of --cfg") -> None:
    """--cfg / --weights: the model every analysis tool reads (exactly one of them)."""
    p.add_argument("--cfg", default=None, help=cfg_help)
    p.add_argument("--weights", default=None, help=weights_help)


def add_output_args(p: argparse.ArgumentParser, tool: str) -> None:
    """--project runs/analyze/<tool>, --name, --exist-ok, as in train/val/detect."""
    p.add_argument("--project", default=f"runs/analyze/{tool}", help="output folder")
    p.add_argument("--name", default="exp", help="run name inside --project")
    p.add_argument("--exist-ok", action="store_true", help="reuse project/name")


def output_dir(project: str | Path = "runs/analyze", name: str = "exp", exist_ok: bool = False) -> Path:
    """project/name, or the next free project/nameN (unless exist_ok); created."""
    from utils.paths import increment_path

    return increment_path(Path(project) / name, exist_ok=exist_ok, mkdir=True)


def load_image_tensor(path: str | Path, imgsz: int, stride: int = 32) -> tuple[torch.Tensor, np.ndarray]:
    """(1, 3, imgsz, imgsz) float RGB in [0, 1] letterboxed as detect.py does, and the letterboxed BGR image."""
    from utils.data.augment import letterbox

    im0 = cv2.imread(str(path))
    if im0 is None:
        raise UserFileNotFoundError(f"{path}: not an image file OpenCV can read")
    im = letterbox(im0, imgsz, auto=False, stride=stride)[0]
    x = torch.from_numpy(np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1))).float()[None] / 255
    return x, im


def save_figure(fig, fname: str | Path, dpi: int = 100) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fname = Path(fname)
    fname.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(fname, dpi=dpi)
    plt.close(fig)
    return fname


def save_text(path: Path, text: str) -> Path:
    """Write a summary and log where it went."""
    path.write_text(text + "\n", encoding="utf-8")
    LOGGER.info(f"saved {path}")
    return path
