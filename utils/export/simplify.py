"""`export.py --simplify`: an ONNX graph simplified by onnxslim (preferred) or onnx-simplifier, whichever is there."""
from __future__ import annotations

from utils.cli import UserValueError


def simplify(proto):
    """The simplified ModelProto; a clear error when neither simplifier is installed."""
    try:
        import onnxslim
    except ImportError:
        onnxslim = None
    if onnxslim is not None:
        return onnxslim.slim(proto)
    try:
        import onnxsim
    except ImportError:
        raise UserValueError("--simplify needs onnxslim or onnxsim (pip install -r requirements-deploy.txt)") from None
    proto, ok = onnxsim.simplify(proto)
    if not ok:
        raise RuntimeError("onnxsim could not verify the simplified model")
    return proto
