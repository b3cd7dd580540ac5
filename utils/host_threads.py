"""Thread counts of the libraries that compute in this process besides an inference runtime (torch, OpenCV)."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import cv2


@contextlib.contextmanager
def host_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` torch intra-op and OpenCV threads, then restore the counts they had.

    Both libraries keep their idle worker threads spinning for a while after each parallel call; next to a
    runtime that computes on its own thread pool (ONNX Runtime, OpenVINO) those spinning threads take its cores.
    torch is left alone when this process has not imported it (an export run without torch)."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None, cv2.getNumThreads()
    if torch:
        torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    try:
        yield
    finally:
        if torch:
            torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
