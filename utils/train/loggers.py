"""Per-epoch outputs: results.csv (YOLOv5 columns), TensorBoard scalars (optional), console lines."""
from __future__ import annotations

import logging
from pathlib import Path

LOGGER = logging.getLogger("yolo")

LOSS_NAMES = ("box", "obj", "cls")  # YOLOv5's loss items; a loss names its own in `item_names` (v8: box, cls, dfl)


def result_keys(loss_names: tuple[str, ...] = LOSS_NAMES) -> tuple[str, ...]:
    """results.csv columns after `epoch`, in YOLOv5's order, for a loss whose items are `loss_names`."""
    return (*(f"train/{n}_loss" for n in loss_names),
            "metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",
            *(f"val/{n}_loss" for n in loss_names), "x/lr0", "x/lr1", "x/lr2")


RESULT_KEYS = result_keys()


def append_results_csv(path: str | Path, epoch: int, values: list[float],
                       keys: tuple[str, ...] = RESULT_KEYS) -> None:
    """Append one row `epoch, values...` under the columns `keys` (header written when the file is new)."""
    if len(values) != len(keys):
        raise ValueError(f"results row needs {len(keys)} values, got {len(values)}")
    path = Path(path)
    header = "" if path.exists() else ("%20s," % "epoch" + ",".join("%20s" % k for k in keys)).rstrip(",") + "\n"
    row = "%20.5g," % epoch + ",".join("%20.5g" % v for v in values)
    with open(path, "a", encoding="utf-8") as f:
        f.write(header + row + "\n")


def read_results_csv(path: str | Path) -> tuple[list[str], list[list[float]]]:
    """(column names, rows) of a results.csv; header names may be space-padded, as YOLOv5 writes them.

    Errors name the file, the row and the column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file not found: {path}")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip(" ,")]
    if not lines:
        raise ValueError(f"{path}: empty file (expected a header row such as 'epoch,train/box_loss,...')")
    cols = [c.strip() for c in lines[0].split(",")]
    rows = []
    for n, line in enumerate(lines[1:], 2):
        fields = line.split(",")
        if len(fields) != len(cols):
            raise ValueError(f"{path}: row {n} has {len(fields)} fields, the header has {len(cols)}")
        row = []
        for col, v in zip(cols, fields):
            try:
                row.append(float(v))
            except ValueError:
                raise ValueError(f"{path}: row {n}, column '{col}': {v.strip()!r} is not a number") from None
        rows.append(row)
    return cols, rows


class TensorBoardLogger:
    """SummaryWriter in the run folder; a warning and no-ops when tensorboard is not installed."""

    def __init__(self, log_dir: str | Path, enabled: bool = True) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            LOGGER.warning(f"TensorBoard: not available ({e}); pip install tensorboard to log there")
            return
        self.writer = SummaryWriter(str(log_dir))
        LOGGER.info(f"TensorBoard: start with 'tensorboard --logdir {Path(log_dir).parent}', "
                    "view at http://localhost:6006/")

    def log_epoch(self, epoch: int, values: list[float], keys: tuple[str, ...] = RESULT_KEYS) -> None:
        """One scalar per results column."""
        if self.writer is None:
            return
        for key, value in zip(keys, values):
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def truncate_results_csv(path: str | Path, start_epoch: int) -> int:
    """Drop rows of epochs >= start_epoch (logged after the checkpoint a resume starts from); returns rows dropped.

    An epoch's row is written before its checkpoint, so a run killed in between logged an epoch that the
    resumed run repeats: without this the file would list that epoch twice.
    """
    path = Path(path)
    if not path.exists():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    keep = lines[:1] + [ln for ln in lines[1:] if ln.strip() and float(ln.split(",")[0]) < start_epoch]
    dropped = len(lines) - len(keep)
    if dropped:
        tmp = path.with_suffix(".csv.tmp")
        tmp.write_text("\n".join(keep) + "\n", encoding="utf-8")
        tmp.replace(path)
        LOGGER.info(f"{path}: dropped {dropped} row(s) logged after the checkpoint being resumed")
    return dropped
