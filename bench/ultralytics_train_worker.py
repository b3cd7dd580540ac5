"""The ultralytics 8.4 side of bench/train_speed.py --ultralytics: one training epoch of its own trainer.

Run ONLY by bench/train_speed.py with the python of a separate environment holding the original package (see
bench/ultralytics_worker.py; the project never imports it). Arguments: model YAML, data YAML (absolute
`path:`, in a folder the trainer may write its label cache to), image size, batch, workers, output .pt.
Trains one epoch from scratch with `DetectionTrainer` (seed 0, CPU, no AMP, no plots, close_mosaic 0: its default
10 would switch mosaic off for a 1-epoch run, while ours keeps it, as every epoch of a run but the last 10) and
saves: the epoch's seconds between on_train_epoch_start and on_train_epoch_end (loading, forward, loss, backward,
optimizer steps, EMA, as bench/official_baseline.py times the official YOLOv5 loop), the images in the epoch, the
model's weights before the first step, the first batch (images, batch_idx, cls, bboxes) and its loss items.
On CPU the trainer itself sets 0 loader workers (whatever `workers` says: loading runs in the main process) and
min(8, cores - 1) torch threads; these CPU defaults are its own and are left as they are (saved as `threads` and
`workers`).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time


def main() -> None:
    cfg, data, imgsz, batch, workers, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
        int(sys.argv[5]), sys.argv[6]
    os.environ.update({"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"})
    os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(tempfile.gettempdir(), "ultralytics_bench_cfg"))
    import torch
    from ultralytics.models.yolo.detect import DetectionTrainer

    project = tempfile.mkdtemp(prefix="ultralytics_train_")
    trainer = DetectionTrainer(overrides=dict(model=cfg, data=data, imgsz=imgsz, batch=batch, epochs=1,
                                              workers=workers, device="cpu", seed=0, close_mosaic=0,
                                              plots=False, val=False, amp=False, project=project, name="exp",
                                              exist_ok=True, verbose=False))
    rec: dict = {}

    def epoch_start(tr) -> None:
        rec["state_dict"] = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
        rec["threads"], rec["workers"] = torch.get_num_threads(), tr.train_loader.num_workers
        rec["t0"] = time.perf_counter()

    def batch_end(tr) -> None:
        if "loss_items" not in rec:
            items = tr.loss_items
            rec["loss_names"] = list(items) if isinstance(items, dict) else None
            rec["loss_items"] = torch.stack([items[k] for k in items]) if isinstance(items, dict) else items.clone()

    def epoch_end(tr) -> None:
        rec["seconds"] = time.perf_counter() - rec["t0"]
        rec["images"] = len(tr.train_loader.dataset)

    preprocess = trainer.preprocess_batch

    def capturing_preprocess(b: dict) -> dict:
        b = preprocess(b)
        if "batch" not in rec:
            rec["batch"] = {k: b[k].detach().clone() for k in ("img", "batch_idx", "cls", "bboxes")}
        return b

    trainer.preprocess_batch = capturing_preprocess
    trainer.add_callback("on_train_epoch_start", epoch_start)
    trainer.add_callback("on_train_batch_end", batch_end)
    trainer.add_callback("on_train_epoch_end", epoch_end)
    trainer.train()
    rec.pop("t0")
    torch.save(rec, out)


if __name__ == "__main__":
    main()
