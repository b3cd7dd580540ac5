"""models/backend_compile.py: --compile (inductor, frozen) gives the eager outputs; --bf16 runs bf16 where the CPU has
it and stays close; both refuse what they cannot do."""
from __future__ import annotations

import weakref

import pytest
import torch

from models.backend_compile import cpu_has_bf16
from models.backends import load_backend
from tests.no_gc import gc_disabled
from tests.shared_data import shared_path
from utils.cli import UserError


@pytest.fixture(scope="module")
def weights():
    return shared_path("weights", "yolov5n.pt")


@pytest.fixture(scope="module")
def x():
    return torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))


@pytest.mark.slow
def test_compiled_equals_eager(weights, x):
    with torch.inference_mode():
        want = load_backend(weights)(x)[0]
        got = load_backend(weights, compile=True)(x)[0]
    torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-4)


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has neither AVX-512 BF16 nor AMX")
def test_bf16_close_to_fp32(weights, x):
    """bf16 autocast: float32 outputs, scores within 0.02 of fp32 (measured 0.006), boxes within 2 px."""
    with torch.inference_mode():
        want = load_backend(weights)(x)[0]
        got = load_backend(weights, bf16=True)(x)[0]
    assert got.dtype == torch.float32 and not torch.equal(got, want)  # it really ran in bf16
    torch.testing.assert_close(got[..., 4:], want[..., 4:], atol=0.02, rtol=0)
    torch.testing.assert_close(got[..., :4], want[..., :4], atol=2.0, rtol=0.01)


def test_bf16_refused_without_cpu_support(weights, monkeypatch):
    import models.backend_compile as bc

    monkeypatch.setattr(bc, "cpu_has_bf16", lambda: False)
    with pytest.raises(UserError, match="neither AVX-512 BF16 nor AMX"):
        load_backend(weights, bf16=True)


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has neither AVX-512 BF16 nor AMX")
def test_bf16_backend_is_freed_when_dropped(weights):
    """Its forward holds no reference to the backend: dropping it frees the model with no garbage collection."""
    with gc_disabled():
        backend = load_backend(weights, bf16=True)
        model = weakref.ref(backend.model)
        del backend
        assert model() is None
