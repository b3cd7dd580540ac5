"""Torch helpers: device selection, training threads, weight initialisation, model summary (parameters, GFLOPs),
seeding."""
from __future__ import annotations

import copy
import logging
import os
import random

import numpy as np
import torch
import torch.nn as nn

LOGGER = logging.getLogger("yolo")


def select_device(device: str | int | torch.device = "") -> torch.device:
    """'' -> cuda:0 if available else cpu; 'cpu'; '0' / 0 / 'cuda:0' -> that GPU. Errors if a GPU is asked for but absent."""
    if isinstance(device, torch.device):
        return device
    spec = str(device).strip().lower().replace("cuda:", "")
    if spec in ("", "none"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {device} requested but CUDA is not available; use --device cpu")
    first = spec.split(",")[0]
    return torch.device(f"cuda:{int(first)}")



def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_train_threads(threads: int, device: torch.device) -> int:
    """Torch intra-op threads for training, set and returned: `threads` when > 0; 0 on a CPU device leaves one core
    to the loader workers and the OS (at most cores - 1, never more than now, i.e. OMP_NUM_THREADS holds), as
    YOLOv5 and ultralytics do: OpenMP threads that share their cores with the workers spin at every barrier and
    made a CPU epoch several times slower. Other devices keep torch's default when `threads` is 0."""
    if threads <= 0 and device.type == "cpu":
        threads = min(torch.get_num_threads(), max(usable_cores() - 1, 1))
    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def initialize_weights(model: nn.Module) -> None:
    """YOLOv5's BatchNorm settings (eps 1e-3, momentum 0.03) and in-place activations.

    Modules with `keep_own_init = True` (pretrained timm / torchvision backbones) and their children are left
    as they are: their BatchNorm statistics were learnt with their own eps.
    """
    keep = [name + "." for name, m in model.named_modules() if getattr(m, "keep_own_init", False)]
    for name, m in model.named_modules():
        if keep and any(name.startswith(k) or name + "." == k for k in keep):
            continue
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-3
            m.momentum = 0.03
        elif isinstance(m, (nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU)):
            m.inplace = True


def count_params(model: nn.Module) -> tuple[int, int]:
    """(parameters, parameters requiring gradients)."""
    n_p = sum(p.numel() for p in model.parameters())
    n_g = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return n_p, n_g


def gflops(model: nn.Module, img_size: int | tuple[int, int] = 640) -> float:
    """GFLOPs (2 x thop MACs) of one forward at img_size, probed at max(stride, 32) and scaled, as YOLOv5 does."""
    try:
        import thop
    except ImportError:  # thop is optional for this figure only
        return 0.0
    stride = int(model.stride.max()) if hasattr(model, "stride") else 32
    s = max(stride, 32)
    p = next(model.parameters())
    ch = getattr(model, "yaml", {}).get("ch", 3)
    size = img_size if isinstance(img_size, (list, tuple)) else (img_size, img_size)
    # a model may count some modules its own way (ultralytics 8 conventions: models/detect_v8.thop_rules)
    custom_ops = model.thop_custom_ops() if hasattr(model, "thop_custom_ops") else None
    probe = copy.deepcopy(model).eval()
    extra: list[float] = []  # modules with `extra_macs(x)` count what thop cannot see (attention's matmuls)
    for m in probe.modules():
        if hasattr(m, "extra_macs"):
            m.register_forward_hook(lambda mod, x, y: extra.append(mod.extra_macs(x[0])))
    with torch.no_grad():
        macs = thop.profile(probe, inputs=(torch.empty((1, ch, s, s), device=p.device, dtype=p.dtype),),
                            custom_ops=custom_ops or {}, verbose=False)[0]
    area = size[0] / s * size[1] / s  # per-position counts scale with the area, all-pairs ones with its square
    return (macs * area + sum(extra) * area ** 2) / 1e9 * 2


def model_info(model: nn.Module, verbose: bool = False, img_size: int = 640, name: str = "Model",
               n_layers: int | None = None, style: str = "yolov5") -> dict:
    """Log '<name> summary: L layers, P parameters, G gradients, F GFLOPs' (and a per-parameter table if verbose).

    L is `n_layers` when given (Model passes the original's way of counting), else len(modules()). `style`
    "ultralytics" writes the line as ultralytics 8 does: thousands separators, and "summary (fused)" for a model
    whose BatchNorms are folded ("YOLOv8n summary (fused): 72 layers, 3,151,904 parameters, 0 gradients, 8.7 GFLOPs")."""
    n_p, n_g = count_params(model)
    if verbose:
        LOGGER.info(f"{'layer':>5} {'name':>40} {'gradient':>9} {'parameters':>12} {'shape':>20} {'mu':>10} {'sigma':>10}")
        for i, (pname, p) in enumerate(model.named_parameters()):
            LOGGER.info(f"{i:5g} {pname:>40} {str(p.requires_grad):>9} {p.numel():12g} {str(list(p.shape)):>20} "
                        f"{p.mean():10.3g} {p.std() if p.numel() > 1 else 0:10.3g}")
    flops = gflops(model, img_size)
    n_layers = len(list(model.modules())) if n_layers is None else n_layers
    fs = f", {flops:.1f} GFLOPs" if flops else ""
    if style == "ultralytics":
        fused = "" if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) else " (fused)"
        LOGGER.info(f"{name} summary{fused}: {n_layers:,} layers, {n_p:,} parameters, {n_g:,} gradients{fs}")
    else:
        LOGGER.info(f"{name} summary: {n_layers} layers, {n_p} parameters, {n_g} gradients{fs}")
    return {"layers": n_layers, "parameters": n_p, "gradients": n_g, "gflops": flops}


def init_seeds(seed: int = 0, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (and make cuDNN deterministic if asked)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"


def de_parallel(model: nn.Module) -> nn.Module:
    """The plain model inside DataParallel / DistributedDataParallel."""
    return model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else model
