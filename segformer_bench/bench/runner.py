"""``segformer-bench run SUITE``: the suite's analyses, each stored unit by unit and resumable.

For each model the runner takes its checkpoint, or trains it first (``train.train``, itself resumable, into
``<run dir>/train/<model>``). The analyses, in the suite's order:

* ``corruption``: every (model, corruption, severity) cell and the clean set, the images corrupted on the
  fly (``fast``/``reference`` backend in the data-loading workers, ``torch`` on the model's device) or read
  from a tree made by ``segformer-bench corrupt``. Corruption seeds derive from (suite seed, image id,
  corruption, severity), so every model sees the same corrupted images whatever the order or sharding;
* ``resolution``: every (model, test resolution) pair, each test with its own dataset options (SynthCity
  renders the same scenes larger) and evaluation settings;
* ``erf``: each model's contribution maps over the first N images, in blocks of ``erf.block`` images.

Each finished unit (cell, test, block) is one transaction in ``<run dir>/results.sqlite``; running the
same command again skips every stored unit, and a run directory made by a different suite is refused
unless ``restart``. Under torchrun the images of each cell and test are sharded over the ranks, ERF blocks
are dealt out to them, and rank 0 stores the gathered results.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..corruptions import corrupt, corrupt_batch, derive_seed
from ..corruptions.protocols import get_protocol
from ..data import build_dataset
from ..data.base import SegmentationDataset
from ..engine.evaluate import eval_settings, evaluate
from ..engine.inference import EvalSettings, segment_batch
from ..errors import UserError
from ..versions import package_versions
from .store import CLEAN, Store
from .suite import ModelSpec, Suite


class CorruptedView(SegmentationDataset):
    """`dataset` with every image corrupted by (corruption, severity) on the CPU, seeded per image."""

    def __init__(self, dataset: SegmentationDataset, corruption: str, severity: int, seed: int, backend: str) -> None:
        self.dataset, self.corruption, self.severity, self.seed, self.backend = (
            dataset, corruption, severity, seed, backend)
        self.info = dataset.info

    def __len__(self) -> int:
        return len(self.dataset)

    def name(self, index: int) -> str:
        return self.dataset.name(index)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        sample = self.dataset[index]
        seed = derive_seed(self.seed, sample["name"], self.corruption, self.severity)
        return corrupt(sample["image"], self.corruption, self.severity, seed, backend=self.backend), sample["label"]


def default_dirs(suite: Suite) -> tuple[Path, Path]:
    """(run dir, report dir): runs/<name> and reports/<name> in the working directory (the repository root
    in the README's commands), unless the suite names its report directory."""
    report = Path(suite.report_dir) if suite.report_dir else Path.cwd() / "reports" / suite.name
    return Path.cwd() / "runs" / suite.name, report


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def checkpoint_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a checkpoint file, or of a checkpoint directory's files (names and contents, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _model_checkpoint(spec: ModelSpec, suite: Suite, run_dir: Path, progress: bool,
                      log: Callable[[str], None]) -> str:
    """The model's checkpoint: the suite's, or the final model of its (resumable) training run."""
    if spec.checkpoint is not None:
        return spec.checkpoint
    from ..config import from_mapping, to_mapping
    from ..engine.train import TRAIN_PRESETS, TrainConfig, train

    assert spec.train is not None
    fields = {**to_mapping(TRAIN_PRESETS[spec.train.preset]), **spec.train.overrides, "model": spec.variant,
              "seed": suite.seed, "device": suite.device}
    config = from_mapping(TrainConfig, fields, f"{suite.source}: model {spec.name!r}, train.overrides")
    target = run_dir / "train" / _slug(spec.name)
    if not (target / "model.pt").exists():
        log(f"training {spec.name} ({spec.variant}) in {target}")
    return str(train(config, target, progress=progress, log=log))  # checks the config; returns at once if done


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class _Run:
    """What every analysis of one run shares: the suite, the store (rank 0 only), the device and the ranks."""

    suite: Suite
    dir: Path
    store: Store | None
    device: torch.device
    rank: int
    world: int
    progress: bool
    log: Callable[[str], None]
    _model: tuple[str, torch.nn.Module] | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def models(self, names: tuple[str, ...]) -> list[ModelSpec]:
        """The suite's models named in an analysis section, in its order (all, in suite order, when it names none)."""
        by_name = {m.name: m for m in self.suite.models}
        return [by_name[n] for n in names] if names else list(self.suite.models)

    def model(self, spec: ModelSpec, num_classes: int) -> torch.nn.Module:
        """`spec`'s model on the device (trained first if the suite says so); the last one is kept loaded."""
        from ..models.checkpoints import load_model

        if self._model is not None and self._model[0] == spec.name:
            return self._model[1]
        self._model = None
        checkpoint = _model_checkpoint(spec, self.suite, self.dir, self.progress, self.log)
        model = load_model(checkpoint, num_classes=spec.num_classes).to(self.device)
        if model.config.num_classes != num_classes:
            raise UserError(f"model {spec.name} predicts {model.config.num_classes} classes but "
                            f"{self.suite.dataset.name} has {num_classes}")
        if self.main:
            self.store.set_model(spec.name, checkpoint, checkpoint_hash(checkpoint), model.config.to_dict())
        self._model = (spec.name, model)
        return model

    def shared(self, value: object) -> object:
        """Rank 0's `value` on every rank (every rank must walk the same work list)."""
        if self.world == 1:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def bar(self, total: int, desc: str, unit: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=not (self.progress and self.main))

    def dataset(self, **options: object) -> SegmentationDataset:
        d = self.suite.dataset
        return build_dataset(d.name, d.split, d.root, **{**d.options, **options})


def run_suite(suite: Suite, run_dir: str | os.PathLike | None = None, restart: bool = False,
              progress: bool = True, render: bool = True, log: Callable[[str], None] = print) -> Path:
    """Run (or finish) every analysis of `suite`; returns the run directory. See the module docstring."""
    from ..engine.distributed import device_for, init_from_env

    rank, world, local_rank = init_from_env()
    default_run, report_dir = default_dirs(suite)
    run = Path(run_dir) if run_dir is not None else default_run
    if run.exists() and not run.is_dir():
        raise UserError(f"{run}: exists and is not a directory; choose another --run-dir")
    store = Store(run / "results.sqlite") if rank == 0 else None
    resolved = suite.to_dict()
    if store is not None:
        stored = store.get_meta("suite")
        if stored is not None and stored != resolved:
            if not restart:
                changed = sorted(k for k in set(stored) | set(resolved) if stored.get(k) != resolved.get(k))
                raise UserError(f"{run} holds results of a different suite (changed: {', '.join(changed)}); "
                                "run with --restart to discard them, or choose another --run-dir")
            store.clear()
        store.set_meta("suite", resolved)
        store.set_meta("versions", package_versions())
    if world > 1:
        torch.distributed.barrier()
    ctx = _Run(suite, run, store, device_for(suite.device, local_rank), rank, world, progress, log)
    analyses = {"corruption": _run_corruption, "resolution": _run_resolution, "erf": _run_erf}
    try:
        for name in suite.analyses:
            analyses[name](ctx)
    finally:
        if store is not None:
            store.close()
    if rank == 0 and render:
        render_run(run, report_dir, log=log)
    return run


def _run_corruption(ctx: _Run) -> None:
    """Every (model, corruption, severity) cell and the clean set, one stored row per cell."""
    suite, store = ctx.suite, ctx.store
    dataset = ctx.dataset()
    protocol = get_protocol(suite.corruptions.protocol)
    cells = [CLEAN] + (list(suite.corruptions.cells) or protocol.cells())
    models = ctx.models(suite.corruptions.models)
    bar = ctx.bar(len(models) * len(cells), "cells", "cell")
    try:
        for spec in models:
            todo = ctx.shared([c for c in cells if not (ctx.main and store.has_cell(spec.name, *c))])
            bar.update(len(cells) - len(todo))
            gallery = "gallery" in suite.reports and ctx.main and not store.has_gallery(spec.name, *CLEAN)
            if not todo and not gallery:
                continue
            model = ctx.model(spec, dataset.info.num_classes)
            settings = eval_settings(suite.eval.preset, suite.eval.overrides, spec.eval,
                                     where=f"{suite.source}: model {spec.name!r}, eval")
            for corruption, severity in todo:
                view, transform = _cell_data(dataset, suite, corruption, severity)
                result = evaluate(model, view, settings, ctx.device, limit=suite.dataset.limit,
                                  progress=ctx.progress, transform=transform,
                                  desc=f"{spec.name} {corruption} {severity}")
                if ctx.main:
                    store.add_cell(spec.name, corruption, severity, result.metrics, result.per_image, result.names,
                                   suite.seed, result.seconds)
                bar.update(1)
            if "gallery" in suite.reports and ctx.main:
                _gallery(store, spec.name, model, dataset, suite, cells, settings, ctx.device)
    finally:
        bar.close()


def network_input_size(dataset: SegmentationDataset, settings: EvalSettings) -> tuple[int, int]:
    """The network's input (H, W) for the dataset's first image: the window in slide mode, else the image as
    resized for inference."""
    from ..engine.inference import inference_size

    h, w = dataset[0]["image"].shape[:2]
    size = inference_size((h, w), settings, 1.0)
    if settings.mode == "slide":
        return min(settings.crop[0], size[0]), min(settings.crop[1], size[1])
    return size


def _run_resolution(ctx: _Run) -> None:
    """Every (model, test resolution) pair of the resolution-shift analysis, one stored row each."""
    suite, store, spec = ctx.suite, ctx.store, ctx.suite.resolution
    assert spec is not None
    models = ctx.models(spec.models)
    bar = ctx.bar(len(models) * len(spec.tests), "resolution tests", "test")
    try:
        for model_spec in models:
            todo = ctx.shared([t.name for t in spec.tests if not (ctx.main and
                                                                   store.has_resolution(model_spec.name, t.name))])
            bar.update(len(spec.tests) - len(todo))
            for test in (t for t in spec.tests if t.name in todo):
                dataset = ctx.dataset(**test.dataset_options)
                model = ctx.model(model_spec, dataset.info.num_classes)
                settings = eval_settings(test.eval.preset, model_spec.eval, test.eval.overrides,
                                         where=f"{suite.source}: resolution test {test.name!r}, eval")
                result = evaluate(model, dataset, settings, ctx.device, limit=suite.dataset.limit,
                                  progress=ctx.progress, desc=f"{model_spec.name} {test.name}")
                if ctx.main:
                    store.add_resolution(model_spec.name, test.name, result.metrics, result.per_image, result.names,
                                         network_input_size(dataset, settings), suite.seed, result.seconds)
                bar.update(1)
    finally:
        bar.close()


def _erf_block(ctx: _Run, model: torch.nn.Module, dataset: SegmentationDataset, indices: list[int]) -> dict:
    """One block's ERF totals: {names, sums, counts, skipped, seconds}."""
    import time

    from ..analyses.erf.maps import TAPS, ERFAccumulator, contribution_maps, cover_crop
    from ..models.base import normalize

    spec = ctx.suite.erf
    taps = spec.taps or TAPS
    t0 = time.perf_counter()
    samples = [dataset[i] for i in indices]
    images = torch.stack([cover_crop(s["image"], spec.size) for s in samples]).to(ctx.device)
    acc = ERFAccumulator(taps)
    acc.add(contribution_maps(model, normalize(images), taps))
    return {"names": [s["name"] for s in samples], "sums": acc.sums, "counts": acc.count, "skipped": acc.skipped,
            "seconds": time.perf_counter() - t0}


def _silent(_: str) -> None:
    pass


def _erf_images(dataset: SegmentationDataset, names: tuple[str, ...], count: int,
                log: Callable[[str], None]) -> list[int]:
    """Dataset indices of the ERF images: those named, in the listed order, or the first `count`."""
    if names:
        index = {dataset.name(i): i for i in range(len(dataset))}
        missing = [n for n in names if n not in index]
        if missing:
            example = dataset.name(0) if len(dataset) else "none"
            raise UserError(f"erf.names: {len(missing)} image(s) not in the dataset, e.g. {missing[0]!r} (names look "
                            f"like {example!r}); fix the list or the dataset's root and split")
        return [index[n] for n in names]
    if count > len(dataset):
        log(f"erf: the dataset has {len(dataset)} images, fewer than the {count} asked for; using all")
    return list(range(min(count, len(dataset))))


def _run_erf(ctx: _Run) -> None:
    """The ERF of every tap of every model over the first N images, in blocks; each block is one stored row.

    Under torchrun the blocks of each round go to different ranks and rank 0 stores all of them."""
    store, spec = ctx.store, ctx.suite.erf
    assert spec is not None
    dataset = ctx.dataset(**spec.dataset_options)
    images = _erf_images(dataset, spec.names, spec.images, ctx.log if ctx.main else _silent)
    n = len(images)
    blocks = [images[i: i + spec.block] for i in range(0, n, spec.block)]
    models = ctx.models(spec.models)
    bar = ctx.bar(len(models) * n, "erf", "img")
    try:
        for model_spec in models:
            todo = ctx.shared([b for b in range(len(blocks)) if not (ctx.main and
                                                                     store.has_erf_block(model_spec.name, b))])
            bar.update(n - sum(len(blocks[b]) for b in todo))
            if not todo:
                continue
            model = ctx.model(model_spec, dataset.info.num_classes)
            for start in range(0, len(todo), ctx.world):
                mine = todo[start: start + ctx.world]
                part = (mine[ctx.rank], _erf_block(ctx, model, dataset, blocks[mine[ctx.rank]])) \
                    if ctx.rank < len(mine) else None
                parts = [part]
                if ctx.world > 1:
                    parts = [None] * ctx.world
                    torch.distributed.all_gather_object(parts, part)
                for b, block in (p for p in parts if p is not None):
                    if ctx.main:
                        store.add_erf_block(model_spec.name, b, block["names"], block["sums"], block["counts"],
                                            block["skipped"], block["seconds"])
                    bar.update(len(blocks[b]))
    finally:
        bar.close()


def _cell_data(dataset: SegmentationDataset, suite: Suite, corruption: str, severity: int):
    """(dataset, on-device transform) for one cell."""
    if (corruption, severity) == CLEAN:
        return dataset, None
    spec = suite.corruptions
    if spec.source == "tree":
        from ..corruptions.generate import CorruptedTree

        return CorruptedTree(spec.tree, corruption, severity), None
    if spec.backend == "torch":
        def transform(images: torch.Tensor, names: list[str]) -> torch.Tensor:
            seeds = [derive_seed(suite.seed, n, corruption, severity) for n in names]
            return corrupt_batch(images, corruption, severity, seeds)

        return dataset, transform
    return CorruptedView(dataset, corruption, severity, suite.seed, spec.backend), None


def _gallery(store: Store, model_name: str, model: torch.nn.Module, dataset: SegmentationDataset, suite: Suite,
             cells: list[tuple[str, int]], settings: EvalSettings, device: torch.device) -> None:
    """The first image under every cell and the model's prediction of it (class ids), stored as PNG bytes."""
    model.eval()
    for corruption, severity in cells:
        if store.has_gallery(model_name, corruption, severity):
            continue
        view, transform = _cell_data(dataset, suite, corruption, severity)
        sample = view[0]
        images = torch.from_numpy(sample["image"]).permute(2, 0, 1)[None].to(device)
        if transform is not None:
            images = transform(images, [sample["name"]])
        with torch.inference_mode():
            pred = segment_batch(model, images, settings)[0].cpu().numpy().astype(np.uint8)
        image = images[0].permute(1, 2, 0).cpu().numpy()
        store.add_gallery(model_name, corruption, severity, _png(image), _png(pred))


def render_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
               log: Callable[[str], None] = print) -> Path:
    """``segformer-bench report RUN_DIR``: render the reports of a run from its store alone — one page with a
    part for every analysis that has finished results."""
    from ..analyses.corruption.report import REPORT_KINDS, corruption_report, write_report

    run = Path(run_dir)
    if not (run / "results.sqlite").is_file():
        raise UserError(f"{run}: no results.sqlite; run a suite into it first (segformer-bench run SUITE)")
    store = Store(run / "results.sqlite")
    try:
        suite = store.get_meta("suite")
        results = store.cell_matrices()
        resolution = store.resolution_results()
        erf_blocks = store.erf_blocks()
        models = store.models()
        gallery_rows = store.gallery()
        versions = store.get_meta("versions")
    finally:
        store.close()
    if suite is None or not (results or resolution or erf_blocks):
        raise UserError(f"{run}: holds no finished results yet")
    seed = suite["seed"]
    metadata = {"suite": suite["name"], "description": suite.get("description", ""),
                "analyses": ", ".join(suite.get("analyses", ["corruption"])),
                "dataset": f"{suite['dataset']['name']} ({suite['dataset']['split']})",
                "models": {name: {"checkpoint": info["checkpoint"], "sha256": info["sha256"]}
                           for name, info in models.items()},
                "versions": versions, "seed": seed}
    files: dict[str, str | bytes] = {}
    sections: list = []
    if results:
        protocol = get_protocol(suite["corruptions"]["protocol"])
        if suite["corruptions"]["cells"]:
            protocol = protocol.restricted([tuple(c) for c in suite["corruptions"]["cells"]])
        metadata |= {"protocol": suite["corruptions"]["protocol"], "backend": suite["corruptions"]["backend"]}
        part = corruption_report(results, _class_names(suite["dataset"]["name"]), protocol, metadata,
                                 reference_model=suite.get("reference_model"),
                                 include_published=suite.get("include_published", False),
                                 gallery=_decode_gallery(gallery_rows) if gallery_rows else None,
                                 seed=seed)
        files |= part[0]
        sections += part[1]
    if resolution:
        from ..analyses.resolution.report import resolution_report

        spec = suite["resolution"]
        published = suite.get("include_published", False) and suite["dataset"]["name"] == "cityscapes"
        part = resolution_report(resolution, [t["name"] for t in spec["tests"]], spec.get("baseline"), published,
                                 seed=seed)
        files |= part[0]
        sections += part[1]
    if erf_blocks:
        from ..analyses.erf.report import erf_report

        order = suite["erf"]["models"] or [m["name"] for m in suite["models"]]
        part = erf_report({k: erf_blocks[k] for k in sorted(erf_blocks, key=lambda k: (order.index(k[0]), k[1]))
                           if k[0] in order}, tuple(suite["erf"]["size"]))
        files |= part[0]
        sections += part[1]
    out = Path(out_dir) if out_dir is not None else (Path(suite["report_dir"]) if suite.get("report_dir")
                                                    else Path.cwd() / "reports" / suite["name"])
    title = f"{suite['name']}: " + ", ".join({"corruption": "corruption robustness", "resolution": "resolution shift",
                                             "erf": "effective receptive fields"}[a]
                                            for a in suite.get("analyses", ["corruption"]))
    written = write_report(out, title, metadata, files, sections, suite.get("reports", REPORT_KINDS))
    log(f"wrote the report to {out} ({', '.join(sorted(p.name for p in written.values()))})" if written else
        "the suite asks for no reports (reports: []); nothing written")
    return out


def _decode_gallery(rows: dict[tuple[str, str, int], tuple[bytes, bytes]]):  # -> report.Gallery
    """The stored gallery: the images as the first model with a gallery stored them, every model's predictions."""
    from PIL import Image

    from ..analyses.corruption.report import Gallery

    def decode(blob: bytes) -> np.ndarray:
        return np.array(Image.open(io.BytesIO(blob)))

    first_model = next(iter(rows))[0]
    return Gallery(images={(c, s): decode(img) for (m, c, s), (img, _) in rows.items() if m == first_model},
                   predictions={key: decode(pred) for key, (_, pred) in rows.items()})


def _class_names(dataset: str) -> tuple[str, ...]:
    if dataset == "ade20k":
        from ..data.ade20k import ADE20K_CLASSES

        return ADE20K_CLASSES
    from ..data.labels import CITYSCAPES_CLASSES

    return CITYSCAPES_CLASSES
