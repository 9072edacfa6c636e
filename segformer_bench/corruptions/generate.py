"""Writing a corrupted copy of a dataset (Cityscapes-C and the like), resumable and in parallel.

Layout: ``<out>/<corruption>/<severity>/<relative image path>.png`` (lossless PNG; the relative path is the
image's path under the dataset root, so a Cityscapes tree keeps ``leftImg8bit/val/<city>/…``; SynthCity's
images are named by their id). Labels are not copied: ``manifest.json`` names the source dataset (name,
split, root, options), so readers take labels from it, and records the protocol, the cells, the suite seed,
the backend, package versions, and a SHA-256 per written file.

Every file is written to a temporary name and renamed, so a killed run leaves no truncated file; running
the same command again skips finished files. A directory holding a manifest of another protocol, seed,
backend or dataset is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import build_dataset
from ..data.base import SegmentationDataset
from ..errors import UserError
from ..image_io import atomic_path, write_json
from ..versions import package_versions
from . import BACKENDS, check_name, check_severity, corrupt, derive_seed
from .protocols import get_protocol

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CorruptionJob:
    """What a corrupted tree is made of; two runs into one directory must agree on all of it."""

    dataset: str
    split: str
    root: str | None
    dataset_options: dict = field(default_factory=dict)
    protocol: str = "segformer"
    cells: tuple[tuple[str, int], ...] = ()  # empty: all cells of the protocol
    seed: int = 0
    backend: str = "fast"
    limit: int | None = None

    def resolved_cells(self) -> list[tuple[str, int]]:
        cells = list(self.cells) or get_protocol(self.protocol).cells()
        return [(check_name(c), check_severity(s)) for c, s in cells]

    def identity(self) -> dict:
        return {"dataset": self.dataset, "split": self.split, "root": self.root, "options": self.dataset_options,
                "protocol": self.protocol, "cells": [list(c) for c in self.resolved_cells()], "seed": self.seed,
                "backend": self.backend, "limit": self.limit}


def relative_image_path(dataset: SegmentationDataset, index: int) -> str:
    """Where image `index` goes under ``<corruption>/<severity>/``: its path under the dataset root, as PNG."""
    if hasattr(dataset, "image_path") and hasattr(dataset, "root"):
        rel = Path(dataset.image_path(index)).relative_to(dataset.root)
        return str(rel.with_suffix(".png"))
    return dataset.name(index) + ".png"


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# A worker process keeps its dataset between tasks (built once per process from the job).
_WORKER: dict = {}


def _worker_dataset(job: CorruptionJob) -> SegmentationDataset:
    if _WORKER.get("job") != job:
        _WORKER["job"] = job
        _WORKER["dataset"] = build_dataset(job.dataset, job.split, job.root, **job.dataset_options)
    return _WORKER["dataset"]


def _process_image(args: tuple[CorruptionJob, int, str, list[tuple[str, int]]]) -> list[tuple[str, str]]:
    """Corrupt one image under every pending cell; returns (relative file, sha256) per written file."""
    job, index, out, cells = args
    dataset = _worker_dataset(job)
    image = dataset[index]["image"]
    name = dataset.name(index)
    rel = relative_image_path(dataset, index)
    written = []
    for corruption, severity in cells:
        target = Path(out) / corruption / str(severity) / rel
        data = _png_bytes(corrupt(image, corruption, severity, derive_seed(job.seed, name, corruption, severity),
                                  backend=job.backend))
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        written.append((str(target.relative_to(out)), hashlib.sha256(data).hexdigest()))
    return written


def _load_manifest(out: Path, job: CorruptionJob) -> dict:
    path = out / MANIFEST
    if not path.exists():
        return {"format_version": FORMAT_VERSION, "job": job.identity(), "versions": package_versions(), "images": [],
                "files": {}}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{path}: not valid JSON; delete it (and the tree) to start anew") from None
    if manifest.get("job") != job.identity():
        theirs = manifest.get("job", {})
        changed = sorted(k for k in set(theirs) | set(job.identity()) if theirs.get(k) != job.identity().get(k))
        raise UserError(f"{out} holds a corrupted tree made differently (protocol {theirs.get('protocol')!r}; "
                        f"differs in: {', '.join(changed)}); choose another --out directory")
    return manifest


def estimate_bytes(dataset: SegmentationDataset, job: CorruptionJob, n_images: int) -> int:
    """Disk space the tree needs: the first image's PNG size under a few cells, times cells × images."""
    image = dataset[0]["image"]
    cells = job.resolved_cells()
    probe = [cells[0], cells[len(cells) // 2], cells[-1]]
    sizes = [len(_png_bytes(corrupt(image, c, s, 0, backend="fast" if job.backend == "torch" else job.backend)))
             for c, s in probe]
    return int(np.mean(sizes) * len(cells) * n_images)


def generate(job: CorruptionJob, out: str | os.PathLike, workers: int = 1, progress: bool = True,
             log: Callable[[str], None] = print, check_space: bool = True) -> Path:
    """Write (or complete) the corrupted tree of `job` under `out`; returns the manifest path."""
    from tqdm import tqdm

    if job.backend not in BACKENDS:
        raise UserError(f"unknown corruption backend {job.backend!r}: choose one of {', '.join(BACKENDS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out")
    dataset = build_dataset(job.dataset, job.split, job.root, **job.dataset_options)
    n = len(dataset) if job.limit is None else min(job.limit, len(dataset))
    if n == 0:
        raise UserError(f"the {job.dataset} {job.split} split has no images")
    cells = job.resolved_cells()
    manifest = _load_manifest(out, job)
    done = set(manifest["files"])
    pending: list[tuple[int, list[tuple[str, int]]]] = []
    for i in range(n):
        rel = relative_image_path(dataset, i)
        todo = [(c, s) for c, s in cells if f"{c}/{s}/{rel}" not in done or not (out / c / str(s) / rel).is_file()]
        if todo:
            pending.append((i, todo))
    total = n * len(cells)
    remaining = sum(len(t) for _, t in pending)
    if not pending:
        log(f"{out}: all {total} files present")
        return out / MANIFEST
    out.mkdir(parents=True, exist_ok=True)
    if check_space:
        need = estimate_bytes(dataset, job, n) * remaining // total
        free = shutil.disk_usage(out).free
        log(f"{remaining} of {total} files to write ({n} images × {len(cells)} cells), about {need / 2**30:.2f} GiB; "
            f"{free / 2**30:.1f} GiB free")
        if need > free:
            raise UserError(f"{out}: about {need / 2**30:.1f} GiB needed but {free / 2**30:.1f} GiB free; "
                            "free space, pass --limit, or choose fewer corruptions")
    manifest["images"] = [{"name": dataset.name(i), "image": relative_image_path(dataset, i)} for i in range(n)]
    tasks = [(job, i, str(out), todo) for i, todo in pending]
    bar = tqdm(total=total, initial=total - remaining, desc="corrupting", unit="img", disable=not progress)
    last_save = time.monotonic()

    def record(results: list[tuple[str, str]]) -> None:
        nonlocal last_save
        manifest["files"].update(dict(results))
        bar.update(len(results))
        if time.monotonic() - last_save > 10:
            write_json(out / MANIFEST, manifest)
            last_save = time.monotonic()

    try:
        if workers > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers) as pool:
                for results in pool.imap_unordered(_process_image, tasks):
                    record(results)
        else:
            for task in tasks:
                record(_process_image(task))
    finally:
        bar.close()
        manifest["files"] = dict(sorted(manifest["files"].items()))
        write_json(out / MANIFEST, manifest)
    return out / MANIFEST
