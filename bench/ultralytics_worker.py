"""The ultralytics 8.4 side of bench/model_speed.py --ultralytics: times the original model on request.

Run ONLY by bench/model_speed.py, with the python of a separate environment holding the original package
(the project never imports it):

    python -m venv --system-site-packages /work/venvs/ultralytics
    /work/venvs/ultralytics/bin/pip install ultralytics==8.4.190

Protocol, one JSON object per line: the arguments name the model, batch and image size; the worker builds
`DetectionModel('<name>.yaml', nc=80).fuse().eval()` (seed 0, the reference build of
../shared/reference/ultralytics), answers {"params": n, "version": v}, then answers each line
`{"runs": k, "channels_last": b}` read from stdin with {"ms": [k forward times]} (under torch.inference_mode,
torch.rand input; NCHW as the original runs it, or the same model and input moved to channels_last) until stdin
closes.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import time


def main() -> None:
    name, bs, imgsz, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    os.environ.update({"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False",
                       "YOLO_CONFIG_DIR": os.path.join(tempfile.gettempdir(), "ultralytics_bench_cfg")})
    import torch
    import ultralytics
    from ultralytics.nn.tasks import DetectionModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = DetectionModel(f"{name}.yaml", ch=3, nc=80, verbose=False).fuse(verbose=False).eval()
    x = torch.rand(bs, 3, imgsz, imgsz)
    forms = {False: (model, x), True: (copy.deepcopy(model).to(memory_format=torch.channels_last),
                                       x.contiguous(memory_format=torch.channels_last))}
    with torch.inference_mode():
        for m, xi in forms.values():
            for _ in range(3):
                m(xi)
    print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "version": ultralytics.__version__}),
          flush=True)
    for line in sys.stdin:
        ask = json.loads(line)
        runs, (m, xi) = int(ask["runs"]), forms[bool(ask.get("channels_last"))]
        times = []
        with torch.inference_mode():
            for _ in range(runs):
                t = time.perf_counter()
                m(xi)
                times.append((time.perf_counter() - t) * 1e3)
        print(json.dumps({"ms": times}), flush=True)


if __name__ == "__main__":
    main()
