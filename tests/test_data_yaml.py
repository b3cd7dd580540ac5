"""Data YAML and hyp YAML parsing: resolution rules and errors naming the key and path."""
from __future__ import annotations

import pytest

from utils.data.data_yaml import load_data_yaml
from utils.data.files import img2label_paths
from utils.hyp import HYP_KEYS, load_hyp


def test_official_hyp_files_load():
    low, med, high = (load_hyp(f"data/hyps/hyp.scratch-{k}.yaml") for k in ("low", "med", "high"))
    assert list(low) == list(HYP_KEYS) and low["lr0"] == 0.01 and low["mosaic"] == 1.0 and low["scale"] == 0.5
    assert med["scale"] == 0.9 and med["mixup"] == 0.1 and high["copy_paste"] == 0.1


def test_hyp_errors_name_file_and_key(tmp_path):
    f = tmp_path / "h.yaml"
    f.write_text("\n".join(f"{k}: 0.1" for k in HYP_KEYS if k != "box") + "\n")
    with pytest.raises(KeyError, match=r"h\.yaml.*box"):
        load_hyp(f)
    f.write_text("\n".join(f"{k}: 0.1" for k in HYP_KEYS) + "\nboxx: 1\n")
    with pytest.raises(KeyError, match="boxx"):
        load_hyp(f)
    f.write_text("\n".join(f"{k}: {'abc' if k == 'lr0' else 0.1}" for k in HYP_KEYS) + "\n")
    with pytest.raises(TypeError, match="lr0"):
        load_hyp(f)


def test_yaml_resolution_and_errors(tmp_path):
    (tmp_path / "ds" / "images" / "train").mkdir(parents=True)
    (tmp_path / "cfg").mkdir()
    y = tmp_path / "cfg" / "d.yaml"
    y.write_text("path: ../ds\ntrain: images/train\nval: [images/train]\nnames: {0: a, 1: b}\n")
    c = load_data_yaml(y)
    assert c.path == (tmp_path / "ds").resolve() and c.train == [c.path / "images" / "train"]
    assert c.names == ["a", "b"] and c.nc == 2 and c.test is None
    assert c.sources("val") == [str(c.path / "images" / "train")]
    with pytest.raises(ValueError, match=r"d\.yaml: no `test:` split"):
        c.sources("test")
    with pytest.raises(ValueError, match="unknown split 'bogus'"):
        c.sources("bogus")
    y.write_text("path: ../ds\ntrain: images/train\nval: images/nope\nnames: [a]\n")
    with pytest.raises(FileNotFoundError, match=r"key 'val'.*images/nope"):
        load_data_yaml(y)
    y.write_text("path: ../ds\ntrain: images/train\nnames: [a]\n")
    with pytest.raises(KeyError, match="'val'"):
        load_data_yaml(y)


def test_img2label_paths_swaps_last_images_folder():
    assert img2label_paths(["/a/images/x/images/b/c.jpg"]) == ["/a/images/x/labels/b/c.txt"]
