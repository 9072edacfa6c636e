"""``segformer-bench run SUITE``: the suite's analyses, each stored unit by unit and resumable.

For each model the runner takes its checkpoint, or trains it first (``engine.train.train``, itself
resumable, into ``<run dir>/train/<model>``). Then it runs the suite's analyses in the suite's order, each a
plug-in of ``segformer_bench.analyses.ANALYSES`` that decides its own units (a corruption cell, a test
resolution, a block of ERF images) and skips the ones already stored.

Each finished unit is one transaction in ``<run dir>/results.sqlite``; running the same command again skips
every stored unit, and a run directory made by a different suite is refused unless ``restart``. Under
torchrun every rank runs the same units (images sharded by ``evaluate``, blocks dealt out by the analysis)
and rank 0 stores the gathered results. ``render_run`` renders a run's report from its store alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..analyses import ANALYSES
from ..data import build_dataset
from ..data.base import SegmentationDataset
from ..errors import UserError
from ..image_io import sha256_of
from ..versions import package_versions
from .specs import ModelSpec
from .store import Store
from .suite import Suite, suite_from_mapping


def default_dirs(suite: Suite) -> tuple[Path, Path]:
    """(run dir, report dir): runs/<name> and reports/<name> in the working directory (the repository root
    in the README's commands), unless the suite names its report directory."""
    report = Path(suite.report_dir) if suite.report_dir else Path.cwd() / "reports" / suite.name
    return Path.cwd() / "runs" / suite.name, report


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def open_store(path: str | os.PathLike) -> Store:
    """A run's store, with the tables of every registered analysis."""
    return Store(path, "".join(a.schema for a in ANALYSES.values()))


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


@dataclass
class _Run:
    """The analyses' RunContext (``analyses.base.RunContext``): the suite, the store (rank 0 only), the device
    and the ranks; it loads (or trains) the models and keeps the last one loaded."""

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
        by_name = {m.name: m for m in self.suite.models}
        return [by_name[n] for n in names] if names else list(self.suite.models)

    def model(self, spec: ModelSpec, num_classes: int) -> torch.nn.Module:
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
            self.store.set_model(spec.name, checkpoint, sha256_of(checkpoint), model.config.to_dict())
        self._model = (spec.name, model)
        return model

    def shared(self, value: object) -> object:
        if self.world == 1:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: object) -> list[object]:
        if self.world == 1:
            return [value]
        parts: list[object] = [None] * self.world
        torch.distributed.all_gather_object(parts, value)
        return parts

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
    store = open_store(run / "results.sqlite") if rank == 0 else None
    resolved = suite.to_dict()
    if store is not None:
        stored = store.get_meta("suite")
        if stored is not None and stored != resolved:
            if not restart:
                changed = sorted(k for k in set(stored) | set(resolved) if stored.get(k) != resolved.get(k))
                raise UserError(f"{run} holds results of a different suite (changed: {', '.join(changed)}); "
                                "run with --restart to discard them, or choose another --run-dir")
            store.clear([t for a in ANALYSES.values() for t in a.tables])
        store.set_meta("suite", resolved)
        store.set_meta("versions", package_versions())
    if world > 1:
        torch.distributed.barrier()
    ctx = _Run(suite, run, store, device_for(suite.device, local_rank), rank, world, progress, log)
    try:
        for name in suite.analyses:
            ANALYSES[name].run(ctx, suite.section(name))
    finally:
        if store is not None:
            store.close()
    if rank == 0 and render:
        render_run(run, report_dir, log=log)
    return run


def render_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
               log: Callable[[str], None] = print) -> Path:
    """``segformer-bench report RUN_DIR``: render the reports of a run from its store alone — one page with a
    part for every analysis that has finished results. The stored suite is read back through the same
    dataclasses as ``run`` reads a suite file."""
    from ..report import write_report

    run = Path(run_dir)
    path = run / "results.sqlite"
    if not path.is_file():
        raise UserError(f"{run}: no results.sqlite; run a suite into it first (segformer-bench run SUITE)")
    store = open_store(path)
    try:
        stored = store.get_meta("suite")
        if stored is None:
            raise UserError(f"{run}: holds no finished results yet")
        suite = suite_from_mapping(stored, str(path))
        metadata: dict[str, object] = {
            "suite": suite.name, "description": suite.description, "analyses": ", ".join(suite.analyses),
            "dataset": f"{suite.dataset.name} ({suite.dataset.split})",
            "models": {name: {"checkpoint": info["checkpoint"], "sha256": info["sha256"]}
                       for name, info in store.models().items()},
            "versions": store.get_meta("versions"), "seed": suite.seed}
        parts = [p for p in (a.report(store, suite, metadata) for a in ANALYSES.values()) if p is not None]
    finally:
        store.close()
    if not parts:
        raise UserError(f"{run}: holds no finished results yet")
    files: dict[str, str | bytes] = {}
    for part in parts:
        metadata |= part.metadata
        files |= part.files
    out = Path(out_dir) if out_dir is not None else (Path(suite.report_dir) if suite.report_dir
                                                    else Path.cwd() / "reports" / suite.name)
    title = f"{suite.name}: " + ", ".join(ANALYSES[a].title for a in suite.analyses)
    written = write_report(out, title, metadata, files, [s for p in parts for s in p.sections],
                           suite.reports)
    log(f"wrote the report to {out} ({', '.join(sorted(p.name for p in written.values()))})" if written else
        "the suite asks for no reports (reports: []); nothing written")
    return out
