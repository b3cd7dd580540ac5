"""Training quality: from scratch on the demo dataset, and fine-tuning the official yolov5n on coco128."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.shared_data import shared_path
from train import train
from utils.train.loggers import read_results_csv
from utils.train.options import TrainOptions

ROOT = Path(__file__).resolve().parents[1]
START_MAP50 = 0.4600  # the official yolov5n on coco128 at 320, batch 32 (val.py, deterministic)
FT_FLOOR = 0.32  # see test_finetune_official_yolov5n_keeps_map
SCRATCH_FLOOR = 0.70  # see test_scratch_demo_dataset_reaches_high_map50


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def fast_hyp(tmp_path) -> Path:
    """hyp.scratch-low without warmup (a 10-epoch run would otherwise spend 4 epochs warming up)."""
    text = (ROOT / "data" / "hyps" / "hyp.scratch-low.yaml").read_text()
    f = tmp_path / "hyp.fast.yaml"
    f.write_text(text.replace("warmup_epochs: 3.0", "warmup_epochs: 0.0"))
    return f


@pytest.mark.slow
def test_scratch_demo_dataset_reaches_high_map50(tmp_path, fast_hyp):
    """yolov5n from scratch, 128 px, batch 16, one optimizer step per batch, 10 epochs on the 400 demo images.

    Measured (this 2-core CPU, 1 thread, --noval): mAP50 0.915 with --seed 0 (0.942 after 12 epochs) and 0.757
    with --seed 1 (0.759 after 12: that seed plateaus lower), mAP50-95 0.497 / 0.405. The seeds differ by 0.16,
    so the floor sits under the lower one: SCRATCH_FLOOR 0.70 = 0.757 - 0.057 (the old 0.75 left seed 1, a
    correct run, 0.007). A trainer that learns markedly slower (a correct run is at 0.26 after 4 epochs, 0.89
    after 7) falls below it; a regression costing less than the seed spread cannot be seen by one 10-epoch run.
    """
    opts = TrainOptions(data=str(ROOT / "data" / "shapes.yaml"), cfg="yolov5n.yaml", hyp=str(fast_hyp), imgsz=128,
                        epochs=10, batch_size=16, accumulate=1, noval=True, noautoanchor=True, workers=2,
                        project=str(tmp_path / "runs"), name="scratch")
    res = train(opts)
    p, r, map50, map50_95 = res.results[:4]
    assert map50 > SCRATCH_FLOOR, f"mAP50 {map50:.3f} after 10 epochs (floor {SCRATCH_FLOOR})"
    assert map50_95 > 0.3
    _, rows = read_results_csv(res.save_dir / "results.csv")
    assert len(rows) == 10 and rows[-1][1] < rows[0][1]  # box loss went down
    for f in ("results.png", "labels.jpg", "train_batch0.jpg", "train_batch2.jpg", "weights/best.pt"):
        assert (res.save_dir / f).is_file(), f


@pytest.mark.slow
def test_finetune_official_yolov5n_keeps_map(tmp_path):
    """One epoch at 320 on coco128 from the official weights keeps them working: mAP50 stays above FT_FLOOR.

    One epoch at 320 does not improve a model trained at 640: our val.py gives the official weights START_MAP50
    at 320 (batch 32, rect), and the official train.py ends this epoch at 0.341 (perf.md). Measured here
    (AutoAnchor refits at 320 as in the official run, "Transferred 348/349 items"): 0.404 with --seed 0, 0.344
    with --seed 1 (another machine's float rounding acts as another seed; the old bound, start - 0.1 = 0.36,
    failed seed 1). FT_FLOOR = 0.32 is the lowest seed minus 0.025, just under the official 0.341: it catches a
    trainer that damages the transferred weights (BatchNorm, loss scale, transfer), not a wrong learning rate —
    the whole epoch is inside the 100-iteration warmup, and lr0 x 10 still ends at 0.393 (measured).
    """
    import val

    data = shared_path("datasets", "coco128", "coco128.yaml")
    weights = shared_path("weights", "yolov5n.pt")
    start = val.run(str(data), weights=str(weights), batch_size=32, imgsz=320, device="cpu", plots=False,
                    save_dir=tmp_path / "val0")[0][2]
    opts = TrainOptions(data=str(data), weights=str(weights), cfg="yolov5n.yaml", imgsz=320, epochs=1,
                        batch_size=16, workers=2, noplots=True, project=str(tmp_path / "runs"), name="ft")
    res = train(opts)
    end = res.results[2]
    assert start == pytest.approx(START_MAP50, abs=1e-4), f"pretrained yolov5n mAP50 at 320 is {start:.4f}"
    assert end > FT_FLOOR, f"mAP50 {start:.3f} -> {end:.3f} after one epoch (floor {FT_FLOOR})"
