"""``segformer-bench run SUITE``: the suite's analyses, each stored unit by unit and resumable.

For each model the runner takes its checkpoint, or trains it first (``engine.train.train``, itself
resumable, into ``<run dir>/train/<model>``). Then it runs the suite's analyses in the suite's order, each a
plug-in of ``segformer_bench.analyses.ANALYSES`` that decides its own units (a corruption cell, a test
resolution, a block of ERF images) and skips the ones already stored.

Each finished unit is one transaction in ``<run dir>/results.sqlite``; running the same command again skips
every stored unit. What keeps results from two different things apart under one name:

* the run directory is locked while a run uses it (``image_io.locked_dir``): a second process is refused with
  the holder's pid, host and start time;
* a run directory holding results of a different suite is refused, and so is a checkpoint file that changed
  since results were stored with it (its SHA-256 is in the store); ``restart`` discards the stored results —
  and a model's training run whose recipe changed — and starts anew, in one transaction;
* a first attempt that stored no unit (a missing checkpoint, a wrong device) leaves nothing to refuse: the
  corrected suite takes its place.

Under torchrun every rank runs the same units (images sharded by ``evaluate``, blocks dealt out by the
analysis) and rank 0 holds the lock and stores the gathered results. ``render_run`` renders a run's report from
its store alone, opened read-only, and says what a partial store (a killed or running run) lacks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ..analyses import ANALYSES, ReportPart
from ..data import build_dataset
from ..data.base import SegmentationDataset
from ..errors import UserError
from ..image_io import locked_dir, sha256_of
from ..models.open import model_files, open_model
from ..models.segmenter import Segmenter
from ..versions import package_versions
from .specs import ModelSpec
from .store import Store
from .suite import Suite, check_suite_name, suite_from_mapping, train_config, training_dir_name
from .timing import machine, record_machine, run_time_part


def default_dirs(suite: Suite) -> tuple[Path, Path]:
    """(run dir, report dir): runs/<name> and reports/<name> in the working directory (the repository root
    in the README's commands), unless the suite names its report directory."""
    check_suite_name(suite.name, suite.source or "suite")  # a Suite built in Python skips the loader's check
    report = Path(suite.report_dir) if suite.report_dir else Path.cwd() / "reports" / suite.name
    return Path.cwd() / "runs" / suite.name, report


def open_store(path: str | os.PathLike, read_only: bool = False) -> Store:
    """A run's store, with the tables of every registered analysis (read-only: as they are, creating nothing)."""
    return Store(path, "" if read_only else "".join(a.schema for a in ANALYSES.values()), read_only=read_only)


def _tables() -> list[str]:
    """Every analysis's store tables; each has a ``model`` column."""
    return [t for a in ANALYSES.values() for t in a.tables]


def _training_dir(spec: ModelSpec, run_dir: Path) -> Path:
    return run_dir / "train" / training_dir_name(spec.name)


def _model_checkpoint(spec: ModelSpec, suite: Suite, run_dir: Path, restart: bool, progress: bool,
                      log: Callable[[str], None]) -> str:
    """The model's checkpoint: the suite's, or the final model of its (resumable) training run. With `restart`,
    a training run whose recipe changed starts anew (one whose recipe did not is kept)."""
    if spec.train is None:
        return spec.checkpoint  # None for a factory without weights
    from ..engine.train import config_changed, train

    config = train_config(spec, suite, suite.source)
    target = _training_dir(spec, run_dir)
    if not (target / "model.pt").exists():
        log(f"training {spec.name} ({spec.variant}) in {target}")
    # train checks the config and returns at once if the run is done
    return str(train(config, target, restart=restart and bool(config_changed(target, config)), progress=progress,
                     log=log))


def _digest(files: list[Path]) -> str:
    """The SHA-256 that identifies a model's files: the file's (or directory's) own for one, a hash of the list
    of their hashes for several (mmseg: config and checkpoint), empty for none (a factory without weights)."""
    if len(files) == 1:
        return sha256_of(files[0])
    import hashlib

    return hashlib.sha256("".join(f"{sha256_of(f)}\n" for f in files).encode()).hexdigest() if files else ""


def _check_unchanged(store: Store, run_dir: Path, name: str, checkpoint: str | os.PathLike, sha256: str) -> None:
    """Refuse a checkpoint whose hash differs from the one the store's results of model `name` were computed with."""
    info = store.models().get(name)
    if info is None or info["sha256"] == sha256 or not store.holds_rows(_tables(), model=name):
        return
    raise UserError(f"{checkpoint}: the checkpoint of model {name!r} changed since results were stored with it in "
                    f"{run_dir} (sha256 {info['sha256'][:12]}… then, {sha256[:12]}… now); put the stored file back, "
                    "or run with --restart to recompute the run's results")


def _used_models(suite: Suite) -> list[ModelSpec]:
    """The models some analysis of the suite runs (a section's `models`, or all when it names none)."""
    names = {n for a in suite.analyses for n in (getattr(suite.section(a), "models", ()) or
                                                 [m.name for m in suite.models])}
    return [m for m in suite.models if m.name in names]


def _check_inputs(suite: Suite) -> None:
    """What can be checked before anything is written: every checkpoint a model of an analysis needs exists."""
    from .validate import check_input

    used = _used_models(suite)
    for i, m in enumerate(suite.models):
        for field in ("checkpoint", "path", "config"):
            if getattr(m, field) is not None and m in used:
                check_input(getattr(m, field), f"{suite.source}: models[{i}].{field} ({m.name})",
                            directory=field == "path")


def _discard_changed_training(run: Path, suite: Suite) -> None:
    """Discard what was trained for each model whose training recipe changed (unchanged ones are kept)."""
    from ..engine.train import RunDir, config_changed

    for spec in _used_models(suite):
        if spec.train is not None:
            target = _training_dir(spec, run)
            if config_changed(target, train_config(spec, suite, suite.source)):
                RunDir(target).discard()


def _same_suite(stored: object, resolved: dict) -> bool:
    """Whether a stored suite is `resolved`, an absent section the same as one stored as null (a suite stored
    before an analysis existed lacks its key)."""
    if not isinstance(stored, dict):
        return False
    sections = {a.section for a in ANALYSES.values()}
    def present(d: dict) -> dict:
        return {k: v for k, v in d.items() if not (k in sections and v is None)}

    return present(stored) == present(resolved)


def _open_run_store(run: Path, suite: Suite, restart: bool) -> Store:
    """The run directory's store, ready for `suite` (see the module docstring: a different suite, a changed
    checkpoint, restart)."""
    store = open_store(run / "results.sqlite")
    try:
        resolved = suite.to_dict()
        stored = store.get_meta("suite")
        meta = {"suite": resolved, "versions": package_versions()}
        if not _same_suite(stored, resolved) and not restart and store.holds_rows(_tables()):
            changed = ("every field (no suite is stored)" if not isinstance(stored, dict) else
                       ", ".join(sorted(k for k in set(stored) | set(resolved) if stored.get(k) != resolved.get(k))))
            raise UserError(f"{run} holds results of a different suite (changed: {changed}); run with --restart "
                            "to discard them, or choose another --run-dir")
        if not _same_suite(stored, resolved) or restart:
            if restart:  # before the wipe, so that a restart killed after it resumes as that restart
                _discard_changed_training(run, suite)
            store.clear(_tables(), meta)  # in one transaction: a run killed meanwhile finds the old store or this
            return store
        for spec in _used_models(suite):
            files = model_files(spec) if spec.train is None else [_training_dir(spec, run) / "model.pt"]
            if spec.name in store.models() and all(f.exists() for f in files):
                _check_unchanged(store, run, spec.name, ", ".join(map(str, files)), _digest(files))
        store.set_meta("versions", meta["versions"])
    except BaseException:
        store.close()
        raise
    return store


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
    restart: bool = False
    _model: tuple[str, Segmenter] | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def models(self, names: tuple[str, ...]) -> list[ModelSpec]:
        by_name = {m.name: m for m in self.suite.models}
        return [by_name[n] for n in names] if names else list(self.suite.models)

    def model(self, spec: ModelSpec, dataset: SegmentationDataset) -> Segmenter:
        if self._model is not None and self._model[0] == spec.name:
            return self._model[1]
        self._model = None
        entry = spec.entry(_model_checkpoint(spec, self.suite, self.dir, self.restart, self.progress, self.log))
        files = model_files(entry)
        source = ", ".join(map(str, files)) or str(entry.factory)
        sha256 = _digest(files) if self.main else ""
        if self.main:
            _check_unchanged(self.store, self.dir, spec.name, source, sha256)
        index = next(i for i, m in enumerate(self.suite.models) if m.name == spec.name)
        info = dataset.info
        model = open_model(entry, info.num_classes, info.class_names,
                           where=f"{self.suite.source}: models[{index}]").to(self.device)
        if self.main:
            self.store.set_model(spec.name, source, sha256, model.describe())
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

        return tqdm(total=total, desc=desc, unit=unit, disable=not (self.progress and self.main),
                    delay=0.5)  # drawn once there is progress to show: a run refused at once prints one line

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
    _check_inputs(suite)
    with locked_dir(run) if rank == 0 else nullcontext():
        store = _open_run_store(run, suite, restart) if rank == 0 else None
        if world > 1:
            torch.distributed.barrier()
        try:
            device = device_for(suite.device, local_rank)
            if store is not None:
                record_machine(store, machine(device, world))
            ctx = _Run(suite, run, store, device, rank, world, progress, log, restart)
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
    part for every analysis of the suite, saying what a partial store (a killed or running run) lacks. The store is
    opened read-only; the stored suite is read back through the same dataclasses as ``run`` reads a suite file."""
    from ..report import write_report

    run = Path(run_dir)
    path = run / "results.sqlite"
    if not path.exists():
        raise UserError(f"{run}: no results.sqlite; run a suite into it first (segformer-bench run SUITE)")
    store = open_store(path, read_only=True)
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
        reported = {name: ANALYSES[name].report(store, suite, metadata) for name in suite.analyses}
        run_time = run_time_part(store, suite.analyses, [m.name for m in suite.models])
    finally:
        store.close()
    if all(p is None for p in reported.values()):
        raise UserError(f"{run}: holds no finished results yet")
    parts = [ReportPart({}, [(ANALYSES[name].title.capitalize(), "Not computed yet: the run has not reached this "
                              "analysis (run the same command again to finish it).", "")]) if p is None else p
             for name, p in reported.items()]  # a partial store: say what is not there
    parts += [run_time] if run_time is not None else []
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
