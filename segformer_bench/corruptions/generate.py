"""Writing a corrupted copy of a dataset (Cityscapes-C and the like), resumable and in parallel.

Layout: ``<out>/<corruption>/<severity>/<relative image path>.png`` (lossless PNG; the relative path is the
image's path under the dataset root, so a Cityscapes tree keeps ``leftImg8bit/val/<city>/…``; SynthCity's
images are named by their id). Labels are not copied: ``manifest.json`` names the source dataset (name,
split, root, options), so readers take labels from it, and records the protocol, the cells, the suite seed,
the backend, package versions, and a SHA-256 per written file.

Every file is written to a temporary name and renamed, so a killed run leaves no truncated file; running
the same command again skips finished files. Finished files are recorded as they finish: the manifest is
written before the first image, then each finished image appends one line (its files and hashes) to
``manifest.journal``, which the next run (or the end of this one) folds into the manifest; so a killed run
redoes at most the images in flight. Worker processes exit when the parent dies. A directory holding a
manifest of another protocol, seed, backend or dataset is refused, and so is a manifest of the wrong shape.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..data import build_dataset
from ..data.base import SegmentationDataset
from ..errors import UserError
from ..image_io import atomic_path, write_json
from ..versions import package_versions
from . import BACKENDS, check_name, check_severity, check_suite_seed, corrupt, derive_seed
from .protocols import get_protocol

MANIFEST = "manifest.json"
JOURNAL = "manifest.journal"  # one JSON object per finished image: {relative file: sha256}
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

    def __post_init__(self) -> None:
        check_suite_seed(self.seed, "seed")
        if self.limit is not None and (type(self.limit) is not int or self.limit < 1):
            raise UserError(f"limit must be at least 1 (or None for every image), got {self.limit!r}")

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


def _exit_with_parent() -> None:
    """Pool initializer: end this worker as soon as the parent process dies (kill -9 included), instead of
    leaving it orphaned. The parent's sentinel (a pipe whose writer only the parent holds) becomes readable
    when the parent is gone."""
    import multiprocessing as mp
    import threading
    from multiprocessing.connection import wait

    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


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


def _manifest_error(path: Path, problem: str) -> UserError:
    return UserError(f"{path}: not a corrupted-tree manifest ({problem}); make the tree again with "
                     "`segformer-bench corrupt` into an empty --out directory")


def _relative_file(name: object) -> bool:
    """Whether `name` is a relative path inside the tree: no absolute path, drive, '..' or empty part."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        return False
    parts = PurePosixPath(name).parts
    return not PurePosixPath(name).is_absolute() and ".." not in parts and ":" not in parts[0]


_JOB_FIELDS = {"dataset": str, "split": str, "root": (str, type(None)), "options": dict, "protocol": str,
               "cells": list, "seed": int, "backend": str, "limit": (int, type(None))}


def read_manifest(path: Path) -> dict:
    """The manifest at `path`, checked for the shape ``generate`` writes (the job, the images, the files); a
    file that is not JSON, or JSON of another shape, is a UserError naming the file and what is wrong.

    The image paths it holds are checked to stay inside the tree: readers build file names from them."""
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _manifest_error(path, "not valid JSON") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not isinstance(manifest, dict):
        raise _manifest_error(path, f"a JSON {type(manifest).__name__}, not an object")
    missing = [k for k in ("job", "images", "files") if k not in manifest]
    if missing:
        raise _manifest_error(path, f"no {', '.join(missing)}")
    job, images, files = manifest["job"], manifest["images"], manifest["files"]
    if not isinstance(job, dict):
        raise _manifest_error(path, "'job' is not an object")
    for key, kind in _JOB_FIELDS.items():
        if key not in job:
            raise _manifest_error(path, f"'job' has no {key!r}")
        if not isinstance(job[key], kind) or isinstance(job[key], bool):
            raise _manifest_error(path, f"'job'.{key} has the wrong type ({type(job[key]).__name__})")
    if not all(isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) and type(c[1]) is int
               for c in job["cells"]):
        raise _manifest_error(path, "'job'.cells is not a list of [corruption, severity] pairs")
    if not isinstance(images, list) or not all(
            isinstance(i, dict) and isinstance(i.get("name"), str) and _relative_file(i.get("image")) for i in images):
        raise _manifest_error(path, "'images' is not a list of {name, image} with image paths inside the tree")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise _manifest_error(path, "'files' is not an object of file → sha256")
    return manifest


def _read_journal(path: Path) -> dict[str, str]:
    """The files a journal records as finished; a line that does not parse (the one being written when the
    run was killed) is skipped, so its files are made again."""
    done: dict[str, str] = {}
    if not path.is_file():
        return done
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            done.update({k: v for k, v in entry.items() if isinstance(k, str) and isinstance(v, str)})
    return done


def _load_manifest(out: Path, job: CorruptionJob) -> dict:
    path = out / MANIFEST
    if not path.exists():
        return {"format_version": FORMAT_VERSION, "job": job.identity(), "versions": package_versions(), "images": [],
                "files": {}}
    manifest = read_manifest(path)
    if manifest["job"] != job.identity():
        theirs = manifest["job"]
        changed = sorted(k for k in set(theirs) | set(job.identity()) if theirs.get(k) != job.identity().get(k))
        raise UserError(f"{out} holds a corrupted tree made differently (protocol {theirs.get('protocol')!r}; "
                        f"differs in: {', '.join(changed)}); choose another --out directory")
    manifest["files"].update(_read_journal(out / JOURNAL))  # a journal is only ever written after its manifest
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
    if type(workers) is not int or workers < 1:
        raise UserError(f"workers must be at least 1, got {workers!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out")
    manifest = _load_manifest(out, job)
    dataset = build_dataset(job.dataset, job.split, job.root, **job.dataset_options)
    n = len(dataset) if job.limit is None else min(job.limit, len(dataset))
    if n == 0:
        raise UserError(f"the {job.dataset} {job.split} split has no images")
    cells = job.resolved_cells()
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
        if (out / JOURNAL).exists():  # a run killed after its last file: fold its journal in
            _publish(out, manifest)
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
    _publish(out, manifest)  # the job is on disk before any journal line that depends on it
    tasks = [(job, i, str(out), todo) for i, todo in pending]
    bar = tqdm(total=total, initial=total - remaining, desc="corrupting", unit="img", disable=not progress)
    with open(out / JOURNAL, "a") as journal:

        def record(results: list[tuple[str, str]]) -> None:
            manifest["files"].update(dict(results))
            journal.write(json.dumps(dict(results)) + "\n")
            journal.flush()  # in the kernel's hands now: a kill -9 of this process cannot lose it
            bar.update(len(results))

        try:
            if workers > 1:
                import multiprocessing as mp

                with mp.get_context("spawn").Pool(workers, initializer=_exit_with_parent) as pool:
                    for results in pool.imap_unordered(_process_image, tasks):
                        record(results)
            else:
                for task in tasks:
                    record(_process_image(task))
        finally:
            bar.close()
    _publish(out, manifest)
    return out / MANIFEST


def _publish(out: Path, manifest: dict) -> None:
    """Write the whole manifest (files sorted), then drop the journal it now contains."""
    manifest["files"] = dict(sorted(manifest["files"].items()))
    write_json(out / MANIFEST, manifest)
    (out / JOURNAL).unlink(missing_ok=True)
