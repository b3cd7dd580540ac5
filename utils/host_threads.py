"""Thread counts of the libraries that compute in this process besides an inference runtime (torch, OpenCV)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import cv2


@contextlib.contextmanager
def host_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` torch intra-op and OpenCV threads, then restore the counts they had.

    Both libraries keep their idle worker threads spinning for a while after each parallel call; next to a
    runtime that computes on its own thread pool (ONNX Runtime, OpenVINO) those spinning threads take its cores."""
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
