"""The PyTorch path's optional speed-ups for val.py / detect.py: `--compile` (torch.compile, inductor, with weight
freezing) and `--bf16` (bf16 autocast on CPUs with AVX-512 BF16 or AMX). Both wrap a loaded 'pt' Backend's forward;
measured in bench/backends.py.

torch.compile specializes on the input shape: each new shape compiles again (tens of seconds on a small CPU), so it
pays off for many images of one shape (val.py's square batches, detect.py on a fixed-size stream), not for a few
images of mixed sizes.
"""
from __future__ import annotations

import torch

from utils.cli import UserValueError


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bf16 natively here (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def accelerate(backend, compile: bool = False, bf16: bool = False):
    """`backend` (kind 'pt') with its forward compiled and/or under bf16 autocast; the decoded output stays float32."""
    if not (compile or bf16):
        return backend
    if backend.kind != "pt":
        raise UserValueError(f"--compile / --bf16 apply to PyTorch weights, not a {backend.kind} export")
    if bf16 and backend.device.type == "cpu" and not cpu_has_bf16():
        raise UserValueError("--bf16: this CPU has neither AVX-512 BF16 nor AMX (bf16 would be emulated, slower)")
    from models.backends import CPU_MICROBATCH, _cat_outputs

    model, forward = backend.model, backend.forward
    chunk = CPU_MICROBATCH if backend.device.type == "cpu" else 0
    if compile:
        compiled = torch.compile(model, backend="inductor", dynamic=False, options={"freezing": True})
        fmt = torch.channels_last

        def compiled_forward(im: torch.Tensor, augment: bool = False):
            im = im.contiguous(memory_format=fmt)
            if augment:
                return model(im, augment=True)
            with torch.no_grad():
                if not chunk or im.shape[0] <= chunk:
                    return compiled(im)
                return _cat_outputs([compiled(part) for part in im.split(chunk)])

        forward = compiled_forward

    if bf16:
        inner, device_type = forward, backend.device.type  # not `backend` itself: no reference cycle through forward

        def forward(im: torch.Tensor, augment: bool = False):
            with torch.autocast(device_type, dtype=torch.bfloat16):
                out = inner(im, augment)
            decoded, raw = out if isinstance(out, (tuple, list)) else (out, None)
            return decoded.float(), raw

    backend.forward = forward
    return backend
