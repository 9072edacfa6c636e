"""Training SegFormer with the paper's recipe (its released configs, on mmseg 0.13), resumable to the bit.

The recipe of the official configs is the default of ``TrainConfig``: AdamW (lr 6e-5, betas 0.9/0.999,
weight decay 0.01), decoder lr ×10, no weight decay on the encoder's LayerNorms (and on a learned
position embedding), poly decay (power 1) after a 1500-iteration linear warm-up from 1e-6, 160k
iterations, batch 8 of 1024×1024 crops, cross-entropy ignoring 255. Two details of mmseg 0.13 are kept:
the warm-up multiplies the poly schedule (mmcv's ``PolyLrUpdaterHook``), and the loss is averaged over
*all* pixels of the batch, ignored ones included (mmseg < 0.24 had no ``avg_non_ignore``).

mmseg's DeepLabV3+ Cityscapes recipe is the preset ``cityscapes-deeplab-mmseg`` (``TRAIN_PRESETS``): SGD
(``optimizer``, ``momentum``), weight decay on every parameter (``decay_norms``), poly 0.9 down to ``min_lr``
without warm-up, and the auxiliary FCN head's loss at weight 0.4 (``aux_loss_weight``; a DeepLabV3+ is then built
with ``aux_head=True``). These fields default to the SegFormer recipe's behaviour, and a run directory whose
saved config predates them compares equal to a config that leaves them at their defaults (``config_changed``).

Reproducibility and exact resume: the i-th training sample of the run (a global counter ``s``) is the
image ``perm_epoch[s mod N]`` augmented with ``numpy.random.default_rng([seed, s])``, so the data stream
is a pure function of (seed, s) whatever the number of workers or ranks; the model's own randomness
(drop path, dropout) comes from torch's global generator, whose state is checkpointed. A run
interrupted and resumed from a checkpoint ends with the same weights as an uninterrupted one (on CPU
bit for bit; on GPU up to the non-determinism of CUDA kernels).

Multi-GPU and multi-node: run the same command under ``torchrun``. ``batch_size`` is the global batch;
each rank takes its share, the decoder's BatchNorm becomes SyncBatchNorm, and checkpoints, logs and
progress come from rank 0.

The run directory is locked while a run uses it (``image_io.locked_dir``; rank 0 holds it): a second process
is refused with the holder's pid, host and start time. Checkpoints reach the disk before the rename that
publishes them; a newest checkpoint that cannot be read whole (a damaged disk, a copy cut short) is set aside
as ``*.unreadable`` and the run resumes from the previous one, saying so.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..config import from_mapping, to_mapping
from ..data import build_dataset
from ..data.base import IGNORE_INDEX, SegmentationDataset
from ..data.transforms import TrainAugment
from ..errors import UserError
from ..image_io import atomic_path, locked_dir, write_json, writing
from ..models.base import SegmentationModel
from ..models.checkpoints import save_model
from ..models.registry import build_model, family_of, load_pretrained
from .distributed import device_for, init_from_env
from .inference import AUTOCAST

MAX_SEED = 2**63 - 1  # seeds are stored in SQLite's signed 64-bit integers (and torch.manual_seed takes 64 bits)


OPTIMIZERS = ("adamw", "sgd")


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run. Defaults are the official Cityscapes recipe."""

    # model
    model: str = "b0"  # a SegFormer variant, or the DeepLabV3+ baseline: deeplabv3plus-r50 / -r101
    model_options: dict[str, Any] = field(default_factory=dict)  # e.g. {ffn: plain, pos_embed: learned}
    pretrained: str | None = None  # ImageNet mit_b*.pth, torchvision resnet*.pth, or any file load_model reads
    # data
    dataset: str = "cityscapes"
    data_root: str | None = None  # default: $CITYSCAPES_ROOT / $ADE20K_ROOT
    dataset_options: dict[str, Any] = field(default_factory=dict)  # SynthCity: size, length, seed
    train_split: str = "train"
    val_split: str = "val"
    # augmentation (mmseg 0.13 pipeline)
    crop: tuple[int, int] = (1024, 1024)
    img_scale: tuple[int, int] = (2048, 1024)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    photometric: bool = True
    # optimisation
    iters: int = 160_000
    batch_size: int = 8  # global: summed over ranks and accumulation steps
    grad_accum: int = 1
    lr: float = 6e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    head_lr_mult: float = 10.0
    warmup_iters: int = 1500
    warmup_ratio: float = 1e-6
    power: float = 1.0
    min_lr: float = 0.0
    optimizer: Literal["adamw", "sgd"] = "adamw"  # mmseg's CNN recipes use SGD (with `momentum`, no betas)
    momentum: float = 0.9  # SGD only
    decay_norms: bool = False  # True: weight decay on every parameter (mmseg's SGD recipe has no paramwise rules)
    aux_loss_weight: float = 0.0  # > 0: the auxiliary head's loss at this weight (mmseg's DeepLabV3+: 0.4)
    amp: Literal["none", "bf16", "fp16"] = "none"
    # bookkeeping
    seed: int = 0
    workers: int = 4
    log_interval: int = 50
    checkpoint_interval: int = 4000
    eval_interval: int = 16_000  # 0: only at the end
    eval_preset: str = "cityscapes"  # an evaluate.EVAL_PRESETS name
    eval_limit: int | None = None  # evaluate on the first N validation images only
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.iters < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise UserError("iters, batch_size and grad_accum must be at least 1")
        if self.warmup_iters < 0 or not 0 < self.warmup_ratio <= 1:
            raise UserError("warmup_iters must be ≥ 0 and warmup_ratio in (0, 1]")
        if min(self.crop) < 32:
            raise UserError(f"crop {self.crop} is too small: at least 32×32")
        if self.checkpoint_interval < 1 or self.log_interval < 1 or self.eval_interval < 0:
            raise UserError("checkpoint_interval and log_interval must be ≥ 1, eval_interval ≥ 0")
        for name in ("lr", "min_lr", "head_lr_mult", "weight_decay", "aux_loss_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise UserError(f"field '{name}' must be a finite number ≥ 0, got {value}")
        if not all(math.isfinite(b) and 0 <= b < 1 for b in self.betas):
            raise UserError(f"field 'betas' must be two numbers in [0, 1), got {list(self.betas)}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"field 'optimizer' {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise UserError(f"field 'momentum' must be a number in [0, 1), got {self.momentum}")
        if not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"field 'seed' {self.seed} is out of range: use an integer from 0 to 2^63 − 1 ({MAX_SEED})")
        from ..data import check_dataset_options  # before the run directory is made, not when the data is built

        check_dataset_options(self.dataset, self.dataset_options, "dataset_options")


TRAIN_PRESETS: dict[str, TrainConfig] = {
    "cityscapes": TrainConfig(),
    "ade20k": TrainConfig(dataset="ade20k", crop=(512, 512), img_scale=(2048, 512), batch_size=16,
                          eval_preset="ade20k"),
    # SynthCity on a CPU: the same recipe, shortened, at a higher learning rate because it starts from scratch.
    "synthcity": TrainConfig(dataset="synthcity", dataset_options={"size": [256, 512]}, crop=(256, 256),
                             img_scale=(512, 256), iters=400, batch_size=8, lr=6e-4, warmup_iters=40,
                             workers=2, log_interval=10, checkpoint_interval=100, eval_interval=0,
                             eval_preset="whole", eval_limit=50),
    # mmseg's deeplabv3plus_r101b-d8_512x1024_80k_cityscapes (set `pretrained` to a torchvision resnet101 file, as
    # its torchvision://resnet101): SGD lr 0.01, momentum 0.9, weight decay 5e-4 on every parameter, no decoder
    # lr multiplier, poly power 0.9 down to 1e-4 without warm-up, 80k iterations of batch 8 (2 per GPU × 4 GPUs
    # there) on 512×1024 crops, the auxiliary FCN head at loss weight 0.4; checkpoints and evaluation (whole
    # image, as its test_cfg) every 8000 iterations.
    "cityscapes-deeplab-mmseg": TrainConfig(model="deeplabv3plus-r101", crop=(512, 1024), iters=80_000,
                                            batch_size=8, optimizer="sgd", lr=0.01, momentum=0.9,
                                            weight_decay=5e-4, decay_norms=True, head_lr_mult=1.0,
                                            warmup_iters=0, power=0.9, min_lr=1e-4, aux_loss_weight=0.4,
                                            checkpoint_interval=8000, eval_interval=8000, eval_preset="whole"),
}


def load_train_config(path: str | os.PathLike | None = None, preset: str | None = None) -> TrainConfig:
    """A preset (default: cityscapes) with the fields of a YAML file laid over it."""
    from ..config import ConfigError, load_yaml

    name = preset or "cityscapes"
    if name not in TRAIN_PRESETS:
        raise ConfigError(f"unknown training preset {name!r}: choose one of {', '.join(TRAIN_PRESETS)}")
    base = to_mapping(TRAIN_PRESETS[name])
    if path is None:
        return TRAIN_PRESETS[name]
    data = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of TrainConfig fields")
    return from_mapping(TrainConfig, {**base, **data}, str(path))


# --------------------------------------------------------------------------------------------------
# Schedule and parameter groups


def lr_factor(config: TrainConfig, it: int) -> float:
    """Multiplier of the base learning rate at iteration `it` (0-based), as mmcv's poly + linear warm-up."""
    poly = (1 - it / config.iters) ** config.power
    factor = poly * (1 - config.min_lr / config.lr) + config.min_lr / config.lr if config.lr else poly
    if it < config.warmup_iters:
        k = (1 - it / config.warmup_iters) * (1 - config.warmup_ratio)
        factor *= 1 - k
    return factor


def param_groups(model: SegmentationModel, config: TrainConfig) -> list[dict]:
    """Decoder ×head_lr_mult; encoder norms (SegFormer's LayerNorms, DeepLab's BatchNorms) and position
    embeddings without weight decay unless ``decay_norms``. Parameters outside encoder and head (DeepLabV3+'s
    auxiliary head) train with the head."""
    no_decay: set[int] = set()
    if not config.decay_norms:
        for module in model.encoder.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.modules.batchnorm._BatchNorm)):
                no_decay.update(id(p) for p in module.parameters(recurse=False))
        for stage in getattr(model.encoder, "stages", ()):  # a ResNet encoder has no stages
            if stage.pos_embed is not None:
                no_decay.add(id(stage.pos_embed))
    enc = [p for p in model.encoder.parameters() if id(p) not in no_decay]
    enc_nd = [p for p in model.encoder.parameters() if id(p) in no_decay]
    grouped = {id(p) for part in (model.encoder, model.head) for p in part.parameters()}
    groups = [
        {"params": enc, "lr": config.lr, "weight_decay": config.weight_decay, "name": "encoder"},
        {"params": enc_nd, "lr": config.lr, "weight_decay": 0.0, "name": "encoder_no_decay"},
        {"params": list(model.head.parameters()) + [p for p in model.parameters() if id(p) not in grouped],
         "lr": config.lr * config.head_lr_mult, "weight_decay": config.weight_decay, "name": "head"},
    ]
    for g in groups:
        g["initial_lr"] = g["lr"]
    return [g for g in groups if g["params"]]


# --------------------------------------------------------------------------------------------------
# Data stream


class TrainSamples(torch.utils.data.Dataset):
    """Sample `s` of the run's stream: image perm_epoch[s mod N], augmented with default_rng([seed, s])."""

    def __init__(self, dataset: SegmentationDataset, augment: TrainAugment, seed: int) -> None:
        self.dataset, self.augment, self.seed = dataset, augment, seed

    @lru_cache(maxsize=2)  # noqa: B019  (one permutation per epoch, two alive at an epoch boundary)
    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(len(self.dataset))

    def __len__(self) -> int:  # the stream is unbounded; DataLoader only needs this for its sampler
        return 2**62

    def __getitem__(self, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.dataset)
        sample = self.dataset[int(self.permutation(s // n)[s % n])]
        return self.augment.apply(sample["image"], sample["label"], np.random.default_rng([self.seed, s]))


class StreamSampler(torch.utils.data.Sampler[int]):
    """Sample counters of this rank, iteration by iteration, from `start_iter` on."""

    def __init__(self, start_iter: int, iters: int, global_batch: int, rank: int, world: int) -> None:
        self.start_iter, self.iters, self.global_batch = start_iter, iters, global_batch
        self.per_rank = global_batch // world
        self.rank = rank

    def __iter__(self):
        for it in range(self.start_iter, self.iters):
            base = it * self.global_batch + self.rank * self.per_rank
            yield from range(base, base + self.per_rank)

    def __len__(self) -> int:
        return (self.iters - self.start_iter) * self.per_rank


# --------------------------------------------------------------------------------------------------
# Run directory: config, checkpoints, metrics log


@dataclass
class RunDir:
    path: Path

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def final(self) -> Path:
        return self.path / "model.pt"

    @property
    def config(self) -> Path:
        return self.path / "train_config.json"

    def latest_checkpoint(self) -> Path | None:
        found = sorted(self.checkpoints.glob("iter_*.pt"))
        return found[-1] if found else None

    def checkpoint(self, it: int) -> Path:
        return self.checkpoints / f"iter_{it:07d}.pt"

    def holds_training(self) -> bool:
        """Whether anything was trained here: a checkpoint or the final model."""
        return self.final.exists() or self.latest_checkpoint() is not None

    def discard(self) -> None:
        """Delete what a run trained (checkpoints first, then the final model and the log), so that a run killed
        meanwhile leaves nothing it could resume from under another config."""
        for p in [*self.checkpoints.glob("iter_*.pt"), *self.checkpoints.glob("iter_*.unreadable"), self.final,
                  self.metrics]:
            p.unlink(missing_ok=True)

    def log(self, record: dict) -> None:
        with open(self.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_log(self, it: int) -> None:
        """Drop records of iterations after `it` (written after the checkpoint we resume from)."""
        if not self.metrics.exists():
            return
        keep = [line for line in self.metrics.read_text().splitlines()
                if line.strip() and json.loads(line).get("iter", 0) <= it]
        with atomic_path(self.metrics) as tmp:
            tmp.write_text("".join(line + "\n" for line in keep))


def config_changed(path: str | os.PathLike, config: TrainConfig) -> list[str]:
    """The fields in which the config saved in run directory `path` differs from `config` (none when there is
    no saved config; ["train_config.json"] when it cannot be read). A field the saved config lacks (one added
    to TrainConfig after the run was made) counts as its default: the run was trained with that behaviour."""
    saved = RunDir(Path(path)).config
    if not saved.exists():
        return []
    try:
        previous = json.loads(saved.read_text())
    except (OSError, ValueError):
        return [saved.name]
    if not isinstance(previous, dict):
        return [saved.name]
    resolved = to_mapping(config)
    defaults = to_mapping(TrainConfig())
    return sorted(k for k in set(previous) | set(resolved) if previous.get(k, defaults.get(k)) != resolved.get(k))


def prepare_run_dir(path: str | os.PathLike, config: TrainConfig, restart: bool) -> RunDir:
    """Create the run directory, or check that an existing one was made by the same config.

    A different config is refused only when something was trained with the old one: a directory whose first
    run failed before its first checkpoint takes the corrected config. `restart` discards what was trained."""
    run = RunDir(Path(path))
    if run.path.exists() and not run.path.is_dir():
        raise UserError(f"{run.path}: exists and is not a directory; choose another run directory")
    changed = config_changed(run.path, config)
    if changed and not restart and run.holds_training():
        raise UserError(f"{run.path} holds a run with a different config (changed: {', '.join(changed)}); "
                        "use another run directory, or --restart to start this one anew")
    with writing(run.path):
        if restart or changed:
            run.discard()
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        write_json(run.config, to_mapping(config))
    return run


_STATE_KEYS = ("model", "optimizer", "scaler", "rng", "iteration")


def _read_checkpoint(path: Path) -> dict:
    """A training checkpoint's state; ValueError (with the reason) when it cannot be read whole."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as e:  # torch's words for a damaged file
        raise ValueError(" ".join(str(e).split())[:200] or type(e).__name__) from None
    missing = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"no {', '.join(missing)} in it")
    return state


def newest_readable_checkpoint(run: RunDir, log: Callable[[str], None]) -> tuple[Path, dict] | None:
    """(path, state) of the newest checkpoint that reads whole; newer ones that do not are renamed
    ``*.unreadable`` (kept for a look, never resumed from), each one said in `log`."""
    bad = False
    for path in sorted(run.checkpoints.glob("iter_*.pt"), reverse=True):
        try:
            return path, _read_checkpoint(path)
        except ValueError as e:
            bad = True
            with writing(path):
                os.replace(path, path.with_name(path.stem + ".unreadable"))
            log(f"checkpoint {path} cannot be read ({e}); set aside as {path.stem}.unreadable, resuming from the "
                "previous one")
    if bad:
        log("no readable checkpoint left: starting from iteration 0")
    return None


# --------------------------------------------------------------------------------------------------
# Distributed helpers


def _all_finite(loss: torch.Tensor, world: int) -> bool:
    flag = torch.isfinite(loss.detach()).all().to(torch.float32)
    if world > 1:
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


# --------------------------------------------------------------------------------------------------
# The loop


def seg_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mmseg 0.13's decode loss: logits upsampled bilinearly to the labels, cross-entropy ignoring 255,
    averaged over all pixels (ignored ones count in the denominator)."""
    logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none").mean()


def train(config: TrainConfig, run_dir: str | os.PathLike, restart: bool = False, progress: bool = True,
          stop_after: int | None = None, log: Callable[[str], None] = print) -> Path:
    """Train by `config` into `run_dir`, resuming from its latest checkpoint; returns the final model path.

    `stop_after` ends this call after that many iterations (checkpointing first), as an interruption would.
    The arguments are checked before the run directory is created or locked (see the module docstring).
    """
    from .evaluate import EVAL_PRESETS

    rank, world, local_rank = init_from_env()
    main = rank == 0
    if config.batch_size % (world * config.grad_accum):
        raise UserError(f"batch_size {config.batch_size} must be divisible by world size {world} × grad_accum "
                        f"{config.grad_accum}")
    if config.eval_preset not in EVAL_PRESETS:
        raise UserError(f"unknown eval_preset {config.eval_preset!r}: choose one of {', '.join(EVAL_PRESETS)}")
    device = device_for(config.device, local_rank)
    micro = config.batch_size // world // config.grad_accum
    # Only SyncBatchNorm (CUDA, several ranks) gathers statistics over more than one image per rank.
    model_class = family_of(config.model).model
    if micro < model_class.min_train_batch and not (world > 1 and device.type == "cuda"):
        raise UserError(f"{model_class.display_name} needs at least {model_class.min_train_batch} images per "
                        "forward pass in training: a BatchNorm of its sees one value per channel and image; raise "
                        "batch_size or lower grad_accum")
    _check_aux(config)
    with locked_dir(run_dir) if main else nullcontext():
        return _train(config, RunDir(Path(run_dir)), restart, progress, stop_after, log, device, micro)


def _check_aux(config: TrainConfig) -> None:
    """An auxiliary loss needs a family with an auxiliary head, and an auxiliary head needs its loss (untrained,
    it would be saved as noise and leave DDP with parameters that get no gradient)."""
    family = family_of(config.model)
    has_aux = "aux_head" in {f.name for f in dataclasses.fields(family.config)}
    if config.aux_loss_weight and not has_aux:
        raise UserError(f"aux_loss_weight {config.aux_loss_weight} needs a model with an auxiliary head (the "
                        f"DeepLabV3+ baseline); {family.model.display_name} has none: set aux_loss_weight to 0")
    if config.model_options.get("aux_head") is True and not config.aux_loss_weight:
        raise UserError("model_options aux_head: true trains the auxiliary head only with aux_loss_weight > 0 "
                        "(mmseg: 0.4); set it, or drop aux_head")
    if config.aux_loss_weight and config.model_options.get("aux_head") is False:
        raise UserError(f"aux_loss_weight {config.aux_loss_weight} needs the auxiliary head that model_options "
                        "aux_head: false removes; drop one of them")


def _train(config: TrainConfig, run: RunDir, restart: bool, progress: bool, stop_after: int | None,
           log: Callable[[str], None], device: torch.device, micro: int) -> Path:
    """``train`` once its arguments are checked and the run directory is locked."""
    from tqdm import tqdm

    from .evaluate import EVAL_PRESETS, evaluate

    rank, world, local_rank = init_from_env()
    main = rank == 0
    resume = None
    if main:
        prepare_run_dir(run.path, config, restart)
        resume = newest_readable_checkpoint(run, log)  # sets unreadable ones aside before the other ranks look
    if world > 1:
        torch.distributed.barrier()

    dataset = build_dataset(config.dataset, config.train_split, config.data_root, **config.dataset_options)
    if len(dataset) == 0:
        raise UserError(f"the {config.dataset} {config.train_split} split is empty")
    options = dict(config.model_options)
    if options.get("pos_embed") == "learned":
        options.setdefault("pos_embed_size", list(config.crop))
    if config.aux_loss_weight:
        options["aux_head"] = True
    torch.manual_seed(config.seed)
    model = build_model(config.model, num_classes=dataset.info.num_classes, **options)
    if config.pretrained and not run.latest_checkpoint():
        load_pretrained(model, config.pretrained, log if main else (lambda _: None))
    model.to(device)

    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(param_groups(model, config), lr=config.lr,
                                                           momentum=config.momentum,
                                                           weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr, betas=config.betas,
                                      weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    start = 0
    latest, state = resume if resume is not None else (run.latest_checkpoint(), None)
    if latest is not None:
        if state is None:  # another rank's: rank 0 has read it whole
            state = torch.load(latest, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"][local_rank % len(state["rng"]["cuda"])])
        start = int(state["iteration"])
        if start >= config.iters and run.final.exists():
            return run.final  # finished: nothing to resume
        if main:
            run.truncate_log(start)
            log(f"resuming from {latest} at iteration {start}")
    elif main:
        run.truncate_log(0)  # records of a run killed before its first checkpoint

    ddp_model: torch.nn.Module = model
    if world > 1:
        if device.type == "cuda":  # torch's SyncBatchNorm runs on GPUs only; on CPU each rank keeps its own BN
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    augment = TrainAugment(crop=config.crop, img_scale=config.img_scale, ratio_range=config.ratio_range,
                           cat_max_ratio=config.cat_max_ratio, flip_prob=config.flip_prob,
                           photometric=config.photometric)
    loader = torch.utils.data.DataLoader(
        TrainSamples(dataset, augment, config.seed), batch_size=micro,
        sampler=StreamSampler(start, config.iters, config.batch_size, rank, world),
        num_workers=config.workers, persistent_workers=config.workers > 0, pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # the loader must not draw from the global RNG (exact resume)
        drop_last=False)
    amp_dtype = AUTOCAST[config.amp]

    def save_checkpoint(it: int) -> None:
        if not main:
            return
        cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
        unwrapped = model.module if hasattr(model, "module") else model
        save_model(unwrapped, run.checkpoint(it), extra={  # atomic, on the disk before the rename publishes it
            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "iteration": it,
            "rng": {"torch": torch.get_rng_state(), "cuda": cuda_rng}, "train_config": to_mapping(config)})
        for old in sorted(run.checkpoints.glob("iter_*.pt"))[:-2]:  # keep the two newest
            old.unlink()

    def validate(it: int) -> None:
        val = build_dataset(config.dataset, config.val_split, config.data_root, **config.dataset_options)
        result = evaluate(model, val, EVAL_PRESETS[config.eval_preset], device, limit=config.eval_limit,
                          progress=progress and main)
        if main:
            m = result.metrics
            run.log({"iter": it, "val_mIoU": m["mIoU"], "val_aAcc": m["aAcc"], "val_mAcc": m["mAcc"],
                     "val_images": len(result.names)})
            log(f"iteration {it}: val mIoU {100 * m['mIoU']:.2f}, aAcc {100 * m['aAcc']:.2f}")

    bar = tqdm(total=config.iters, initial=start, desc="training", unit="it", disable=not (progress and main))
    batches = iter(loader)
    ddp_model.train()
    t_log, window_loss, window_n = time.perf_counter(), 0.0, 0
    it = start
    try:
        while it < config.iters:
            factor = lr_factor(config, it)
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            optimizer.zero_grad(set_to_none=True)
            loss_sum = torch.zeros((), device=device)
            for _ in range(config.grad_accum):
                images, labels = next(batches)
                images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    if config.aux_loss_weight:  # mmseg sums the decode loss and the weighted auxiliary loss
                        logits, aux_logits = ddp_model(images, aux=True)
                        loss = (seg_loss(logits, labels)
                                + config.aux_loss_weight * seg_loss(aux_logits, labels)) / config.grad_accum
                    else:
                        loss = seg_loss(ddp_model(images), labels) / config.grad_accum
                scaler.scale(loss).backward()
                loss_sum += loss.detach()
            if not _all_finite(loss_sum, world):
                last = run.latest_checkpoint()
                raise TrainingDiverged(
                    f"the loss became {loss_sum.item()} at iteration {it + 1}; stopped without saving that state"
                    + (f", the last good checkpoint is {last}" if last else "")
                    + "; lower lr, use amp=bf16 instead of fp16, or check the data")
            scaler.step(optimizer)
            scaler.update()
            it += 1
            window_loss += loss_sum.item()
            window_n += 1
            bar.update(1)
            if it % config.log_interval == 0 or it == config.iters:
                elapsed = time.perf_counter() - t_log
                record = {"iter": it, "loss": window_loss / window_n, "lr": config.lr * factor,
                          "it_per_s": window_n / elapsed, "images_per_s": window_n * config.batch_size / elapsed}
                if main:
                    run.log(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                t_log, window_loss, window_n = time.perf_counter(), 0.0, 0
            if it % config.checkpoint_interval == 0 or it == config.iters:
                save_checkpoint(it)
            if config.eval_interval and it % config.eval_interval == 0 and it != config.iters:
                validate(it)
                ddp_model.train()
            if stop_after is not None and it - start >= stop_after and it < config.iters:
                save_checkpoint(it)
                return run.checkpoint(it)
    finally:
        bar.close()
    validate(it)
    if main:
        save_model(model.module if hasattr(model, "module") else model, run.final,
                   extra={"train_config": to_mapping(config), "iteration": it})
    return run.final

