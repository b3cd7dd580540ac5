"""Per-row inference profile of a Model: median time, parameters and GFLOPs of every YAML row."""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from models.rows import row_input
from utils.analysis.common import save_figure


@dataclass(frozen=True)
class RowProfile:
    """One YAML row: index, type, from, parameters, GFLOPs (2 x thop MACs) and median milliseconds."""

    i: int
    type: str
    f: object
    params: int
    gflops: float
    ms: float


@dataclass(frozen=True)
class Profile:
    """All rows, plus the median time of the whole model's forward on the same input."""

    rows: list[RowProfile]
    total_ms: float
    imgsz: int

    @property
    def gflops(self) -> float:
        return sum(r.gflops for r in self.rows)

    def table(self, sort: str = "ms") -> str:
        """Rows sorted by `sort` (ms, gflops, params or i), then the totals."""
        rows = sorted(self.rows, key=lambda r: getattr(r, sort), reverse=sort != "i")
        row_ms = sum(r.ms for r in self.rows)
        lines = [f"{'layer':>5} {'type':<22} {'from':>12} {'params':>10} {'GFLOPs':>9} {'ms':>9} {'time %':>7}"]
        for r in rows:
            lines.append(f"{r.i:>5} {r.type.split('.')[-1]:<22} {str(r.f):>12} {r.params:>10,d} {r.gflops:>9.3f} "
                         f"{r.ms:>9.3f} {100 * r.ms / max(row_ms, 1e-9):>6.1f}%")
        lines.append(f"total at {self.imgsz}x{self.imgsz}: {sum(r.params for r in self.rows):,d} parameters, "
                     f"{self.gflops:.3f} GFLOPs; rows {row_ms:.2f} ms vs whole model {self.total_ms:.2f} ms "
                     "(medians)")
        return "\n".join(lines)


def _median_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def _row_gflops(m: nn.Module, inp: object) -> float:
    import thop

    macs = thop.profile(copy.deepcopy(m), inputs=(inp,), verbose=False)[0]
    return macs * 2 / 1e9


def profile_rows(model: nn.Module, imgsz: int = 640, runs: int = 5, batch: int = 1) -> Profile:
    """Run every row on its real inputs (zeros image, eval mode, no grad): `runs` timings each, median kept."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    model = model.eval()
    p = next(model.parameters())
    ch = getattr(model, "yaml", {}).get("ch", 3)
    x0 = torch.zeros(batch, ch, imgsz, imgsz, device=p.device, dtype=p.dtype)
    rows, outs, x = [], {}, x0
    with torch.no_grad():
        for m in tqdm(model.model, desc="profiling rows", leave=False):
            inp = row_input(m, x, outs)
            ms = _median_ms(lambda: m(inp), runs)
            rows.append(RowProfile(m.i, m.type, m.f, sum(q.numel() for q in m.parameters()),
                                   _row_gflops(m, inp) / batch, ms))
            x = m(inp)
            outs[m.i] = x
        total = _median_ms(lambda: model(x0), runs)
    return Profile(rows, total, imgsz)


def plot_profile(prof: Profile, fname: str | Path, top: int = 30) -> Path:
    """Horizontal bars of time and GFLOPs for the `top` slowest rows."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(prof.rows, key=lambda r: r.ms, reverse=True)[:top][::-1]
    labels = [f"{r.i} {r.type.split('.')[-1]}" for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(12, max(3.0, 0.3 * len(rows) + 1)), sharey=True)
    axes[0].barh(labels, [r.ms for r in rows], color="tab:blue")
    axes[0].set_xlabel("median time (ms)")
    axes[1].barh(labels, [r.gflops for r in rows], color="tab:orange")
    axes[1].set_xlabel("GFLOPs")
    fig.suptitle(f"per-layer profile at {prof.imgsz}px: rows {sum(r.ms for r in prof.rows):.1f} ms, "
                 f"model {prof.total_ms:.1f} ms, {prof.gflops:.2f} GFLOPs")
    return save_figure(fig, fname)
