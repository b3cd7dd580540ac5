"""Static-shape compilations of a dynamic OpenVINO IR for the input shapes that recur.

A dynamic IR compiled once takes any input shape, but OpenVINO's CPU plugin runs a model compiled for one static
shape faster: yolov5n on 2 cores of a Xeon with AMX, batch 1 at 640x640, f32 31.1 -> 26.1 ms and bf16 22.2 -> 16.8 ms;
at 480x640 25.5 -> 22.4 and 15.9 -> 12.2 ms; batch 8 at 640, 1.09x (f32) and 1.19x (bf16). A compilation and its
first call cost 0.15-0.2 s, which takes some 50 calls at 3-5 ms saved to pay back, so a shape gets its own only once
it has come `after` times (a stream or a fixed-size benchmark: a shape seen that often is likely to keep coming);
detect.py on a folder of mixed sizes stays on the dynamic one (coco128's commonest shape has 41 of its 128 images;
compiling at 16 calls made detect.py 0.2-0.3 s slower). The `keep` most recently used compilations are kept (each
holds its own copy of the weights).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, TypeVar

Compiled = TypeVar("Compiled")

STATIC_AFTER = 50  # break-even: 0.15-0.2 s to compile and run first against 3-5 ms saved per call (yolov5n)
STATIC_KEEP = 4


class StaticShapes(Generic[Compiled]):
    """Per input shape: None until the shape has come `after` times, then its own compilation (LRU of `keep`)."""

    def __init__(self, compile_for: Callable[[tuple[int, ...]], Compiled], after: int = STATIC_AFTER,
                 keep: int = STATIC_KEEP) -> None:
        if after < 1 or keep < 1:
            raise ValueError(f"after and keep must be >= 1, got {after} and {keep}")
        self.compile_for, self.after, self.keep = compile_for, after, keep
        self.seen: dict[tuple[int, ...], int] = {}
        self.compiled: OrderedDict[tuple[int, ...], Compiled] = OrderedDict()

    def get(self, shape: tuple[int, ...]) -> Compiled | None:
        """The static compilation for `shape` (made on its `after`-th call), or None: run the dynamic one."""
        shape = tuple(int(s) for s in shape)
        if shape in self.compiled:
            self.compiled.move_to_end(shape)
            return self.compiled[shape]
        self.seen[shape] = self.seen.get(shape, 0) + 1
        if self.seen[shape] < self.after:
            return None
        self.compiled[shape] = self.compile_for(shape)
        while len(self.compiled) > self.keep:
            evicted, _ = self.compiled.popitem(last=False)
            self.seen[evicted] = 0  # it must recur `after` times again to come back
        return self.compiled[shape]
