"""utils/host_threads.py: torch's and OpenCV's thread counts for a block, restored after it."""
from __future__ import annotations

import cv2
import pytest
import torch

from utils.host_threads import host_threads


def test_host_threads_sets_then_restores_even_after_an_error():
    torch_before, cv2_before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    try:
        with pytest.raises(RuntimeError, match="inside"):
            with host_threads(1):
                assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 2 and cv2.getNumThreads() == 2
    finally:
        torch.set_num_threads(torch_before)
        cv2.setNumThreads(cv2_before)
