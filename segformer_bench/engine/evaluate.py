"""Evaluation: a model over a dataset → dataset-level and per-image confusion matrices → metrics.

Test-time protocols of the official configs (NVlabs/SegFormer's ``local_configs``, on mmseg 0.13) are the
``EVAL_PRESETS``, each an ``inference.EvalSettings`` that ``inference.segment_batch`` runs:

* Cityscapes: the native 1024×2048 image, sliding 1024×1024 windows with stride 768 (``mode="slide"``);
* ADE20K: the whole image resized keeping its ratio to short side 512 (``img_scale=(2048, 512)``), then to
  a multiple of 32 (``size_divisor=32``, the SegFormer fork's AlignedResize), logits resized back;
* multi-scale + flip: ``scales`` ratios of ``img_scale`` (Cityscapes 0.5…2.0 step 0.25, ADE 0.75…1.25 step
  0.125) and horizontal flips, softmax probabilities averaged at the original size.

Under ``torchrun`` (an initialised process group) images are sharded over ranks (rank, rank + world, …)
and the per-image matrices gathered, so every rank returns the numbers one process would.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..calibration import calibration_counts
from ..config import from_mapping, to_mapping
from ..data.base import SegmentationDataset
from ..models.segmenter import Segmenter, as_segmenter
from .inference import AUTOCAST, EvalSettings, check_input_size, decide_compile, segment_batch
from .metrics import per_image_confusion, scores

EVAL_PRESETS: dict[str, EvalSettings] = {
    "cityscapes": EvalSettings(mode="slide", crop=(1024, 1024), stride=(768, 768), img_scale=(2048, 1024)),
    "cityscapes-ms": EvalSettings(mode="slide", crop=(1024, 1024), stride=(768, 768), img_scale=(2048, 1024),
                                  scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0), flip=True),
    "ade20k": EvalSettings(mode="whole", img_scale=(2048, 512), size_divisor=32),
    "ade20k-ms": EvalSettings(mode="whole", img_scale=(2048, 512), size_divisor=32,
                              scales=(0.75, 0.875, 1.0, 1.125, 1.25), flip=True),
    "whole": EvalSettings(mode="whole"),
}


def eval_settings(preset: str, *layers: Mapping[str, Any], where: str) -> EvalSettings:
    """An EVAL_PRESETS entry with each mapping of EvalSettings fields laid over it in turn; a bad field or
    value is a ConfigError naming `where`."""
    fields = to_mapping(EVAL_PRESETS[preset])
    for layer in layers:
        fields.update(layer)
    return from_mapping(EvalSettings, fields, where)


@dataclass
class EvalResult:
    """Per-image confusion matrices (N, K, K) in dataset order, their names, and the metrics of their sum."""

    names: list[str]
    per_image: np.ndarray
    class_names: tuple[str, ...]
    seconds: float = 0.0
    metrics: dict = field(default_factory=dict)
    per_image_loss: np.ndarray | None = None  # with an adversary: its per-image loss, in the same order
    calibration: np.ndarray | None = None  # with calibration_bins: per-image ``calibration_counts`` (N, 3·bins + 3)
    settings: EvalSettings | None = None  # as run: ``compile: auto`` resolved to "on" or "off"

    @property
    def confusion(self) -> np.ndarray:
        return self.per_image.sum(axis=0)

    def to_dict(self) -> dict:
        return {"metrics": self.metrics, "class_names": list(self.class_names), "images": len(self.names),
                "seconds": self.seconds, "confusion": self.confusion.tolist()}


# (uint8 images, int64 labels, names) → (float images on the 0–255 scale, per-image losses): an attack
Adversary = Callable[[torch.Tensor, torch.Tensor, list[str]], tuple[torch.Tensor, np.ndarray]]


def _shard(n: int) -> tuple[list[int], int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = 0, 1
    return list(range(rank, n, world)), rank, world


def export_cityscapes_prediction(pred: np.ndarray, name: str, out_dir: Path) -> None:
    """Write a trainId prediction as a Cityscapes labelId PNG ``<out_dir>/<city>/<stem>.png``, the form
    cityscapesScripts' evaluator finds (``{city}_{seq}_{frame}*.png`` anywhere under its results path)."""
    from ..data.labels import train_ids_to_label_ids
    from ..image_io import write_png

    write_png(out_dir / f"{name}.png", train_ids_to_label_ids(pred).astype(np.uint8))


def _batches(indices: Sequence[int], dataset: SegmentationDataset, settings: EvalSettings):
    """Samples in groups of up to batch_size consecutive same-size images, loaded by DataLoader workers."""
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, list(indices)), batch_size=None, shuffle=False,
        num_workers=settings.workers, persistent_workers=False,
        generator=torch.Generator(),  # keep the global RNG untouched by the loader's seeding
    )
    group: list[dict] = []
    for index, sample in zip(indices, loader, strict=True):
        sample["index"] = index
        if group and (len(group) == settings.batch_size or group[0]["image"].shape != sample["image"].shape):
            yield group
            group = []
        group.append(sample)
    if group:
        yield group


def evaluate(model: Segmenter | torch.nn.Module, dataset: SegmentationDataset,
             settings: EvalSettings = EVAL_PRESETS["whole"], device: torch.device | str = "cpu",
             limit: int | None = None, export_dir: str | os.PathLike | None = None,
             export: Callable[[np.ndarray, str, Path], None] | None = None, progress: bool = False,
             transform: Callable[[torch.Tensor, list[str]], torch.Tensor] | None = None,
             adversary: Adversary | None = None, calibration_bins: int | None = None,
             desc: str = "evaluating") -> EvalResult:
    """Evaluate `model` on the first `limit` images of `dataset` (all by default).

    `transform(images, names)` may change each (B, 3, H, W) uint8 batch on the device before inference
    (on-the-fly corruption on the GPU). `adversary(images, labels, names)` then replaces it by float images on
    the 0–255 scale and gives a per-image loss (an attack; it runs with gradients, outside inference mode). With
    `export_dir`, each prediction is passed to ``export(pred, name, export_dir)`` (every rank writes the images
    of its own shard). With `calibration_bins`, each image's ``calibration.calibration_counts`` of the class
    probabilities its prediction is the argmax of are returned too — for models whose outputs are probabilities
    (``outputs == "logits"``); a universal model's scores are left out (``calibration`` stays None).
    """
    from tqdm import tqdm

    model = as_segmenter(model)
    device = torch.device(device)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    indices, rank, world = _shard(n)
    K = dataset.info.num_classes
    amp_dtype = AUTOCAST[settings.autocast]
    was_training = model.training
    model.eval()
    local: dict[int, np.ndarray] = {}
    names: dict[int, str] = {}
    losses: dict[int, float] = {}
    calibrations: dict[int, np.ndarray] = {}
    calibrate = calibration_bins is not None and model.outputs == "logits"
    ran: EvalSettings | None = None  # settings with compile: auto decided, at the first batch
    t0 = time.perf_counter()
    bar = tqdm(total=len(indices), desc=desc, unit="img", leave=False, disable=not progress or rank != 0)
    try:
        for group in _batches(indices, dataset, settings):
            images = torch.from_numpy(np.stack([s["image"] for s in group])).permute(0, 3, 1, 2).to(device)
            if transform is not None:
                images = transform(images, [s["name"] for s in group])
            labels = torch.from_numpy(np.stack([s["label"] for s in group])).to(device)
            check_input_size(model, tuple(images.shape[-2:]), settings.mode, settings.crop, settings.stride)
            if ran is None:  # auto decides once for the whole evaluation, from its first image's size
                on = settings.compile == "on" or (settings.compile == "auto" and decide_compile(
                    model, tuple(images.shape[-2:]), settings, len(indices)))
                ran = dataclasses.replace(settings, compile="on" if on else "off")
            if adversary is not None:
                images, image_losses = adversary(images, labels.long(), [s["name"] for s in group])
                for s, value in zip(group, np.asarray(image_losses, dtype=np.float64), strict=True):
                    losses[s["index"]] = float(value)
            amp = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
            probabilities: list[torch.Tensor] | None = [] if calibrate else None
            with torch.inference_mode(), amp:
                pred = segment_batch(model, images, ran, probabilities)
                cms = per_image_confusion(pred, labels, K).cpu().numpy()
            if probabilities is not None:
                for s, c in zip(group, calibration_counts(probabilities[0], labels, calibration_bins), strict=True):
                    calibrations[s["index"]] = c
            if export_dir is not None and export is not None:
                for s, p in zip(group, pred.cpu().numpy(), strict=True):
                    export(p.astype(np.uint8), s["name"], Path(export_dir))
            for s, cm in zip(group, cms, strict=True):
                local[s["index"]] = cm
                names[s["index"]] = s["name"]
            bar.update(len(group))
    finally:
        bar.close()
        model.train(was_training)
    if world > 1:
        gathered: list = [None] * world
        torch.distributed.all_gather_object(gathered, (local, names, losses, calibrations))
        local, names, losses, calibrations = {}, {}, {}, {}
        for part_cm, part_names, part_losses, part_calibrations in gathered:
            local.update(part_cm)
            names.update(part_names)
            losses.update(part_losses)
            calibrations.update(part_calibrations)
    order = sorted(local)
    per_image = np.stack([local[i] for i in order]) if order else np.zeros((0, K, K), np.int64)
    result = EvalResult(names=[names[i] for i in order], per_image=per_image.astype(np.int64),
                        class_names=dataset.info.class_names, seconds=time.perf_counter() - t0,
                        per_image_loss=np.array([losses[i] for i in order]) if adversary is not None else None,
                        calibration=np.stack([calibrations[i] for i in order]) if calibrate and order else None,
                        settings=ran or dataclasses.replace(settings, compile="off"))
    result.metrics = scores(result.confusion)
    return result


def format_table(result: EvalResult) -> str:
    """Per-class IoU/Acc and the summary, as a plain-text table for the terminal."""
    m = result.metrics
    width = max(len(c) for c in result.class_names)
    lines = [f"{'class'.ljust(width)}  {'IoU':>6}  {'Acc':>6}", f"{'-' * width}  {'-' * 6}  {'-' * 6}"]
    for name, iou, acc in zip(result.class_names, m["IoU"], m["Acc"], strict=True):
        fmt = lambda v: "   n/a" if v != v else f"{100 * v:6.2f}"  # noqa: E731  (NaN: class absent)
        lines.append(f"{name.ljust(width)}  {fmt(iou)}  {fmt(acc)}")
    lines.append(f"mIoU {100 * m['mIoU']:.2f}  aAcc {100 * m['aAcc']:.2f}  mAcc {100 * m['mAcc']:.2f}  "
                 f"({len(result.names)} images, {result.seconds:.1f} s)")
    return "\n".join(lines)


# the preset `eval` uses when none is named: the dataset's official protocol; the adverse-condition datasets are
# Cityscapes-trained models' test sets, so they get its protocol (ACDC's and Dark Zurich's 1920×1080 frames are
# resized to fit 2048×1024, i.e. 1820×1024, and slid over with the 1024 window)
DEFAULT_PRESET = {"cityscapes": "cityscapes", "ade20k": "ade20k", "synthcity": "whole",
                  "foggy_cityscapes": "cityscapes", "acdc": "cityscapes", "dark_zurich": "cityscapes"}


def check_eval_outputs(out: str | os.PathLike | None, export_cityscapes: str | os.PathLike | None) -> None:
    """Refuse, before anything is loaded or computed, outputs that could only fail at the end: a JSON file
    (`out`, with its ``.npz`` beside it) that is a directory, or an export directory that is a file."""
    from ..errors import UserError

    if out is not None:
        path = Path(out)
        if path.suffix == ".npz":
            raise UserError(f"--out {path}: name the JSON file (e.g. {path.with_suffix('.json')}); the per-image "
                            ".npz is written beside it")
        for target in (path, path.with_suffix(".npz")):
            if target.is_dir():
                raise UserError(f"--out {target}: is a directory; --out names the JSON file to write, e.g. "
                                f"{path / 'eval.json'}")
    if export_cityscapes is not None and Path(export_cityscapes).exists() and not Path(export_cityscapes).is_dir():
        raise UserError(f"--export-cityscapes {export_cityscapes}: exists and is not a directory; name a "
                        "directory for the labelId PNGs")
    for flag, target in (("--out", out), ("--export-cityscapes", export_cityscapes)):
        if target is not None:
            nearest = next(p for p in Path(target).absolute().parents if p.exists())
            if not nearest.is_dir():
                raise UserError(f"{flag} {target}: {nearest} is a file, so nothing can be written under it")


def run_evaluation(checkpoint: str, dataset: str, split: str = "val", root: str | None = None,
                   preset: str | None = None, overrides: Sequence[str] = (), limit: int | None = None,
                   device: str = "auto", out: str | None = None, export_cityscapes: str | None = None,
                   progress: bool = True, dataset_options: dict | None = None,
                   log: Callable[[str], None] = print) -> EvalResult:
    """The ``segformer-bench eval`` command: load, evaluate, print a table, write JSON (+ .npz per image)."""
    from ..config import ConfigError, override
    from ..data import build_dataset
    from ..image_io import atomic_path, write_json
    from ..models.open import open_model
    from ..versions import package_versions
    from .distributed import device_for, init_from_env

    check_eval_outputs(out, export_cityscapes)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ConfigError(f"limit must be at least 1 (or None for every image), got {limit!r}")
    preset = preset or DEFAULT_PRESET.get(dataset, "whole")
    if preset not in EVAL_PRESETS:
        raise ConfigError(f"unknown eval preset {preset!r}: choose one of {', '.join(EVAL_PRESETS)}")
    settings = override(EVAL_PRESETS[preset], list(overrides), "--set")
    ds = build_dataset(dataset, split, root, **(dataset_options or {}))
    if export_cityscapes and ds.info.num_classes != 19:
        raise ConfigError("--export-cityscapes needs a model and dataset in Cityscapes' 19 classes")
    rank, _world, local_rank = init_from_env()
    dev = device_for(device, local_rank)
    model = open_model(checkpoint, where=str(checkpoint)).to(dev)
    if model.num_classes != ds.info.num_classes:
        raise ConfigError(f"{checkpoint} predicts {model.num_classes} classes but {dataset} has "
                          f"{ds.info.num_classes}; evaluate it on a matching dataset")
    result = evaluate(model, ds, settings, dev, limit=limit, export_dir=export_cityscapes,
                      export=export_cityscapes_prediction if export_cityscapes else None, progress=progress)
    if rank == 0:
        if settings.compile == "auto":
            log(f"compile: auto decided {result.settings.compile} (engine.inference.decide_compile)")
        print(format_table(result))
        if out:
            record = {**result.to_dict(), "names": result.names, "checkpoint": str(checkpoint),
                      "dataset": dataset, "split": split, "settings": dataclasses.asdict(result.settings),
                      "versions": package_versions()}
            write_json(out, record)
            with atomic_path(Path(out).with_suffix(".npz")) as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, per_image=result.per_image, names=np.array(result.names))
            log(f"wrote {out} and {Path(out).with_suffix('.npz')} (per-image confusion matrices)")
    return result
