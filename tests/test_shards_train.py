"""Training from tar shards learns as training from the image folder does (same data, same seed)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.demo_subset import demo_subset_yaml
from tests.shared_data import shared_path
from tools.make_shards import make_shards
from train import train
from utils.train.options import TrainOptions

ROOT = Path(__file__).resolve().parents[1]
MAP50_FLOOR = 0.10  # see the test's docstring
MAP50_NOISE = 0.12

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.slow
def test_training_from_shards_reaches_the_folders_map(tmp_path):
    """The official yolov5n's backbone, a new 4-class head, 200 demo images at 96 px, 4 epochs, --seed 0.

    Measured here (mAP50 on the 40 val images): folder 0.167 (seed 1: 0.257), shards 0.213 (seed 1: 0.211); the
    same shards with each image given its neighbour's labels reach 0.006 (the head never sees a right box). The
    folder's two seeds differ by 0.09, so the shard run must come within MAP50_NOISE = 0.12 of the folder run and
    both above MAP50_FLOOR = 0.10, which a loader that pairs images with wrong labels stays far below."""
    data = demo_subset_yaml(tmp_path, 200, 40)
    shards = make_shards(str(data), tmp_path / "shards", 25, ["train"])
    hyp = tmp_path / "hyp.fast.yaml"
    hyp.write_text((ROOT / "data/hyps/hyp.scratch-low.yaml").read_text().replace("warmup_epochs: 3.0",
                                                                              "warmup_epochs: 0.0"))
    maps = {}
    for name, source in (("folder", data), ("shards", shards)):
        opts = TrainOptions(data=str(source), weights=str(shared_path("weights", "yolov5n.pt")), cfg="yolov5n.yaml",
                            hyp=str(hyp), imgsz=96, epochs=4, batch_size=16, accumulate=1, noautoanchor=True,
                            noplots=True, noval=True, workers=1, device="cpu", project=str(tmp_path / "runs"),
                            name=name)
        maps[name] = train(opts).results[2]
    assert min(maps.values()) > MAP50_FLOOR, maps
    assert abs(maps["shards"] - maps["folder"]) < MAP50_NOISE, maps
