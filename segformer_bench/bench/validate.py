"""``segformer-bench validate SUITE``: everything about a suite that can be checked without running it.

``load_suite`` checks the file itself (fields, types, names that must exist). ``validate_suite`` goes on to
what a run would otherwise find out only when it reaches it:

- the device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``): its spelling, not whether this machine has
  it, since a suite is often checked on one machine and run on another (a missing GPU is noted);
- inputs exist: every model's checkpoint (and is not empty), transformers directory (with its config.json)
  and mmseg config, a ``python`` model's factory imports, a training recipe's ``pretrained`` file, and the
  paths of the analyses' sections (a corrupted tree, a condition's root), which are all inputs;
- training recipes: the preset with its overrides is a valid ``TrainConfig``, as the runner will build it;
- datasets: the options are ones the dataset takes, and the dataset opens. SynthCity is built without
  rendering anything; Cityscapes and ADE20K are opened (directory listings, no image read) when a root is
  named by the suite or by $CITYSCAPES_ROOT / $ADE20K_ROOT; when neither names one, that is noted, since the
  run will read the variable wherever it runs. Checked for the suite's dataset, for the dataset options of
  each analysis section (laid over the suite's, as the run does), for the datasets an analysis opens besides
  (``Analysis.datasets``: the conditions) and for each training recipe's dataset.

Each problem is one ``ConfigError`` naming the suite file and the field.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..analyses import ANALYSES
from ..config import ConfigError, short
from ..errors import UserError
from .suite import Suite, load_suite, train_config

DEVICE_TYPES = ("cpu", "cuda", "mps")  # with "auto": what engine.distributed.resolve_device is meant for
ROOT_VARIABLES = {"cityscapes": "CITYSCAPES_ROOT", "ade20k": "ADE20K_ROOT", "acdc": "ACDC_ROOT",  # datasets read
                  "dark_zurich": "DARK_ZURICH_ROOT", "foggy_cityscapes": "FOGGY_CITYSCAPES_ROOT"}  # from a directory


def validate_suite(name_or_path: str | os.PathLike) -> str:
    """The line ``validate`` prints for a suite that passes every check (see the module docstring); the
    first problem is a ConfigError naming the file and field."""
    suite = load_suite(name_or_path)
    notes = check_suite(suite)
    parts = ", ".join(ANALYSES[a].describe(suite.section(a)) for a in suite.analyses)
    line = f"{suite.source}: ok ({suite.name}: {len(suite.models)} model(s), {suite.dataset.name}; {parts})"
    return line + "".join(f"; note: {n}" for n in notes)


def check_suite(suite: Suite) -> list[str]:
    """Check what a run of `suite` would need (see the module docstring); returns notes, raises ConfigError."""
    where = suite.source or suite.name
    notes = [n for n in [check_device(suite.device, f"{where}: device")] if n]
    for i, m in enumerate(suite.models):
        check_model(m, f"{where}: models[{i}]")
    d = suite.dataset
    notes.append(check_dataset(d.name, d.split, d.root, d.options, f"{where}: dataset"))
    for name in suite.analyses:
        analysis, spec = ANALYSES[name], suite.section(name)
        for field, path in _paths(analysis, spec):
            check_input(path, f"{where}: {analysis.section}.{field}")
        for field, options in _fields_named(spec, "dataset_options", analysis.section):
            notes.append(check_dataset(d.name, d.split, d.root, {**d.options, **options}, f"{where}: {field}"))
        for field, dataset, split, root, options in analysis.datasets(spec, suite):
            notes.append(check_dataset(dataset, split, root, options, f"{where}: {field}"))
    for i, m in enumerate(suite.models):
        if m.train is not None:
            notes += _check_training(suite, i, where)
    return list(dict.fromkeys(n for n in notes if n))  # each note once


def check_device(name: str, where: str) -> str | None:
    """A ConfigError unless `name` is a device name a run understands; a note when it is one this machine
    lacks (a suite may be checked here and run elsewhere)."""
    if name == "auto":
        return None
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise ConfigError(f"{where}: unknown device {short(name)}; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        return f"device {name!r}: this machine sees no CUDA device"
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        return f"device {name!r}: this machine sees {torch.cuda.device_count()} CUDA device(s)"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return f"device {name!r}: MPS is not available on this machine"
    return None


def check_input(path: str, where: str, directory: bool = False) -> None:
    """A ConfigError unless `path` (a file or a directory the run reads) exists and, if a file, is not empty;
    with `directory`, a transformers model directory (one holding config.json)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{where}: {p}: no such file or directory; check the path (relative paths are "
                          "relative to the suite file)")
    if p.is_file() and p.stat().st_size == 0:
        raise ConfigError(f"{where}: {p} is empty (0 bytes); point it at a complete file")
    if directory and not (p / "config.json").is_file():
        raise ConfigError(f"{where}: {p} is not a transformers model directory (no config.json in it); point it "
                          "at the directory save_pretrained wrote")


def check_model(model: Any, where: str) -> None:
    """What can be checked of a model entry without building it: its files exist (a transformers directory
    holds a config.json), its factory imports."""
    for field in ("checkpoint", "path", "config"):
        if getattr(model, field) is not None:
            check_input(getattr(model, field), f"{where}.{field}", directory=field == "path")
    if model.factory is not None:
        from ..models.foreign.python import import_factory

        import_factory(model.factory, where)
    if model.family == "transformers":
        from ..models.foreign.transformers import check_transformers

        check_transformers(model, where)


def check_dataset(name: str, split: str, root: str | None, options: dict[str, Any], where: str) -> str | None:
    """A ConfigError unless dataset `name` takes `options` and opens (see the module docstring); a note when
    its root is left to an environment variable that is not set here."""
    from ..data import DATASETS, build_dataset, check_dataset_options

    if name not in DATASETS:
        raise ConfigError(f"{where}: unknown dataset {short(name)}: choose one of {', '.join(DATASETS)}")
    try:
        check_dataset_options(name, options, where)
    except UserError as e:
        raise ConfigError(str(e)) from None
    variable = ROOT_VARIABLES.get(name)
    if variable and not root and not os.environ.get(variable):
        return f"the {name} root is read from ${variable} at run time (not set here)"
    try:
        build_dataset(name, split, root, **options)
    except UserError as e:
        raise ConfigError(f"{where}: {e}") from None
    return None


def _check_training(suite: Suite, i: int, where: str) -> list[str]:
    """Model `i`'s training recipe, built as the runner builds it, and the files and datasets it reads."""
    spec = suite.models[i]
    field = f"{where}: models[{i}].train.overrides"
    config = train_config(spec, suite, where)  # as the runner builds it (the loader has checked its fields)
    if config.pretrained is not None:
        check_input(config.pretrained, f"{field}.pretrained")
    options = f"{field}.dataset_options" if "dataset_options" in spec.train.overrides else \
        f"{where}: models[{i}].train.preset {spec.train.preset!r}"
    return [check_dataset(config.dataset, split, config.data_root, config.dataset_options, options)
            for split in dict.fromkeys((config.train_split, config.val_split))]


def _paths(analysis: Any, spec: Any) -> Iterator[tuple[str, str]]:
    """(field, path) of every path in an analysis section: the ones its ``resolve_paths`` visits."""
    found: list[str] = []
    analysis.resolve_paths(spec, lambda p: found.append(p) or p)
    names = {getattr(spec, f.name): f.name for f in dataclasses.fields(spec)
             if isinstance(getattr(spec, f.name), str)} if dataclasses.is_dataclass(spec) else {}
    for path in found:
        if path is not None:
            yield names.get(path, "path"), path


def _fields_named(value: Any, name: str, where: str) -> Iterator[tuple[str, Any]]:
    """(where, value) of every dataclass field called `name` in `value`, through nested dataclasses and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.name == name:
                yield f"{where}.{f.name}", v
            else:
                yield from _fields_named(v, name, f"{where}.{f.name}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _fields_named(v, name, f"{where}[{i}]")
