"""Loss analysis: training curves of one or several runs side by side, and per-image loss to find the hardest images.

  python tools/loss_analysis.py --results runs/train/exp/results.csv runs/train/exp2/results.csv
  python tools/loss_analysis.py --weights best.pt --data coco128.yaml --imgsz 640 --top 20
Writes under runs/analyze/loss_analysis/<name>/: results.png and results.txt (curves: losses, P, R, mAP and
learning rates per epoch; best epoch of each run), image_losses.txt (every image, hardest first) and
hardest.jpg (the hardest images with their labels).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.analysis.common import add_model_args, add_output_args, analysis_model, output_dir, save_text  # noqa: E402
from utils.analysis.image_loss import loss_hyp, loss_table, per_image_losses  # noqa: E402
from utils.analysis.loss_curves import plot_runs, read_results, summary  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", nargs="*", default=[], help="results.csv files (or run folders holding one)")
    add_model_args(p, "model YAML for the per-image loss (random weights)", "checkpoint for the per-image loss")
    p.add_argument("--data", default=None, help="data YAML for the per-image loss")
    p.add_argument("--split", default="val", choices=("train", "val", "test"), help="images to score")
    p.add_argument("--hyp", default=str(REPO / "data" / "hyps" / "hyp.scratch-low.yaml"), help="loss gains")
    p.add_argument("--imgsz", type=int, default=640, help="letterboxed input size")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward")
    p.add_argument("--top", type=int, default=16, help="hardest images drawn")
    add_output_args(p, "loss_analysis")
    opt = p.parse_args(argv)
    if not opt.results and not opt.data:
        p.error("give --results (training curves) and/or --data with --cfg/--weights (per-image loss)")
    if opt.data and not (opt.cfg or opt.weights):
        p.error("--data needs a model: --weights or --cfg")
    return opt


def curves(files: list[str], out: Path) -> None:
    runs = [read_results(Path(f) / "results.csv" if Path(f).is_dir() else f) for f in files]
    text = summary(runs)
    print(text)
    save_text(out / "results.txt", text)
    plot_runs(runs, out / "results.png")


def hardest(opt: argparse.Namespace, out: Path) -> None:
    from utils.downloads import ensure_dataset
    from utils.data.dataloaders import LoadImagesAndLabels, create_dataloader
    from utils.hyp import load_hyp
    from utils.plot_labels import plot_images

    model = analysis_model(opt.cfg, opt.weights)
    data = ensure_dataset(opt.data)
    stride = int(model.stride.max())
    loader, dataset = create_dataloader(data.sources(opt.split), opt.imgsz, opt.batch_size, stride,
                                        workers=0, nc=data.nc)
    losses = per_image_losses(model, loader, loss_hyp(load_hyp(opt.hyp), model, opt.imgsz))
    print(loss_table(losses, opt.top))
    save_text(out / "image_losses.txt", loss_table(losses))
    index = {f: i for i, f in enumerate(dataset.im_files)}
    batch = LoadImagesAndLabels.collate_fn([dataset[index[e.path]] for e in losses[:opt.top]])
    plot_images(batch[0], batch[1], batch[2], out / "hardest.jpg", names=data.names, max_subplots=opt.top)


def main(argv: list[str] | None = None) -> Path:
    opt = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = output_dir(opt.project, opt.name, opt.exist_ok)
    if opt.results:
        curves(opt.results, out)
    if opt.data:
        hardest(opt, out)
    return out


if __name__ == "__main__":
    from utils.cli import run_main

    run_main(main)
