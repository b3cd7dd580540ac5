"""The dataset YAML zoo (data/*.yaml, data/hyps/) and the name resolution of --data / --cfg / --hyp."""
from __future__ import annotations


import pytest
import yaml

from models.yolo import load_model_yaml
from utils.converters import check_converter_args
from utils.data.data_yaml import load_data_yaml
from utils.downloads.spec import parse_download
from utils.hyp import load_hyp
from utils.resolve import ROOT, resolve_file

# name -> (class count, first name, last name), as YOLOv5 v7.0's data/*.yaml
ZOO = {
    "coco": (80, "person", "toothbrush"), "coco128": (80, "person", "toothbrush"),
    "VOC": (20, "aeroplane", "tvmonitor"), "Argoverse": (8, "person", "stop_sign"),
    "GlobalWheat2020": (1, "wheat_head", "wheat_head"), "Objects365": (365, "Person", "Table Tennis"),
    "SKU-110K": (1, "object", "object"), "VisDrone": (10, "pedestrian", "motor"),
    "xView": (60, "Fixed-wing Aircraft", "Tower"),
}


def test_every_data_yaml_is_in_the_zoo():
    assert sorted(p.stem for p in (ROOT / "data").glob("*.yaml")) == sorted([*ZOO, "shapes"])


@pytest.mark.parametrize("name", sorted(ZOO))
def test_data_yaml_classes_paths_and_download_spec(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the bare name resolves to data/ from anywhere
    cfg = load_data_yaml(f"{name}.yaml", check=False)
    nc, first, last = ZOO[name]
    assert (cfg.nc, cfg.names[0], cfg.names[-1]) == (nc, first, last)
    assert len(set(cfg.names)) == nc
    raw = yaml.safe_load((ROOT / "data" / f"{name}.yaml").read_text())
    assert raw["path"] == f"../datasets/{name}" and sorted(raw["names"]) == list(range(nc))
    assert cfg.path == ROOT / "datasets" / name
    spec = parse_download(raw["download"], name)
    assert spec.files and all(f.url.startswith(("http://", "https://")) for f in spec.files)
    for f in spec.files:
        assert f.sha256 is None or len(f.sha256) == 64
    if spec.convert:
        check_converter_args(spec.convert, spec.convert_args)
    assert not isinstance(raw["download"], str)  # never a script


def test_coco_checksums_are_the_published_ones():
    spec = parse_download(yaml.safe_load((ROOT / "data/coco.yaml").read_text())["download"], "coco")
    val = next(f for f in spec.files if f.filename == "val2017.zip")
    assert (val.size, val.sha256[:8]) == (815585330, "4f7e2ccb")


@pytest.mark.parametrize("name, key, value", [
    ("hyp.VOC.yaml", "lr0", 0.00334), ("hyp.VOC.yaml", "anchors", 3.412),
    ("hyp.Objects365.yaml", "lr0", 0.00258), ("hyp.Objects365.yaml", "anchor_t", 3.44),
    ("hyp.no-augmentation.yaml", "mosaic", 0.0), ("hyp.no-augmentation.yaml", "lrf", 0.1),
])
def test_hyp_files(name, key, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_hyp(name)[key] == value


def test_bare_names_resolve_to_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_file("coco.yaml", "data") == ROOT / "data" / "coco.yaml"
    assert resolve_file("yolov5s", "cfg") == ROOT / "models" / "yolov5s.yaml"
    assert resolve_file("hyp.scratch-low.yaml", "hyp") == ROOT / "data" / "hyps" / "hyp.scratch-low.yaml"
    assert load_model_yaml("yolov5s.yaml")[1] == str(ROOT / "models" / "yolov5s.yaml")


def test_a_file_where_the_user_stands_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "coco.yaml").write_text("path: .\ntrain: .\nval: .\nnames: [only]\n")
    assert load_data_yaml("coco.yaml").names == ["only"]


def test_a_name_found_nowhere_lists_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        load_data_yaml("nosuch.yaml")
    msg = str(e.value)
    assert msg.startswith("data YAML not found: nosuch.yaml")
    assert str(tmp_path / "nosuch.yaml") in msg and str(ROOT / "data" / "nosuch.yaml") in msg
    with pytest.raises(FileNotFoundError) as e:
        load_hyp("hyp.nosuch.yaml")
    assert str(ROOT / "data" / "hyps" / "hyp.nosuch.yaml") in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        load_model_yaml("yolov9z")
    assert all(str(p) in str(e.value) for p in (ROOT / "models" / "yolov9z", ROOT / "models" / "yolov9z.yaml"))


def test_missing_dataset_error_points_at_the_download(tmp_path):
    y = tmp_path / "d.yaml"
    y.write_text("path: gone\ntrain: images/train\nval: images/val\nnames: [a]\n"
                 "download: {files: [{url: 'https://x/a.zip', sha256: null, size: null, archive: zip}]}\n")
    with pytest.raises(FileNotFoundError, match="has a `download:` section"):
        load_data_yaml(y)
