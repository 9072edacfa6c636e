"""``open_model``: any model entry (a suite's ``models:`` item, or a checkpoint path) → a Segmenter.

Each family has one opener in ``OPENERS`` (this package's models here; the others in ``models/foreign/``,
imported only when an entry asks for them, so transformers or mmsegmentation load only when used). After the
family's opener, the classes are checked against the caller's dataset: equal counts, or the entry's
``class_map`` — anything else is one line naming both.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import ConfigError, from_mapping
from ..errors import EncoderOnlyError
from .entry import ModelEntry, check_entry
from .segmenter import BuiltinSegmenter, Segmenter, resolve_class_map


def _open_builtin(entry: ModelEntry, num_classes: int | None, where: str) -> Segmenter:
    from .checkpoints import load_model

    if entry.checkpoint is None:
        raise ConfigError(f"{where} ({entry.name}): needs a checkpoint (or a training recipe in a suite)")
    try:
        model = load_model(entry.checkpoint, num_classes=entry.num_classes)
    except EncoderOnlyError:  # a new head: for the entry's classes, else the dataset's
        if entry.num_classes is not None or num_classes is None or entry.class_map:
            raise
        model = load_model(entry.checkpoint, num_classes=num_classes)
    if entry.family is not None and model.family != entry.family:
        raise ConfigError(f"{where} ({entry.name}): {entry.checkpoint} holds a {model.display_name}, not a model "
                          f"of family {entry.family!r}; fix the family or the checkpoint")
    return BuiltinSegmenter(model, entry.name)


# family → "module:function" of its opener (entry, num_classes, where) → Segmenter; builtin ones are callables
OPENERS: dict[str, Callable[..., Segmenter] | str] = {
    "segformer": _open_builtin,
    "deeplabv3plus": _open_builtin,
    "transformers": "segformer_bench.models.foreign.transformers:open_transformers",
    "python": "segformer_bench.models.foreign.python:open_python",
    "mmseg": "segformer_bench.models.foreign.mmseg:open_mmseg",
}


def opener(family: str) -> Callable[..., Segmenter]:
    target = OPENERS[family]
    if callable(target):
        return target
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def entry_from(entry: ModelEntry | Mapping[str, Any] | str | os.PathLike, where: str = "model entry") -> ModelEntry:
    """A ModelEntry from an entry, a mapping of its fields (a suite's ``models:`` item), or a checkpoint path.

    A path is this package's checkpoint (any layout ``load_model`` reads), or a transformers directory whose
    config.json names another model type than SegFormer (those this package reads natively).
    """
    if isinstance(entry, ModelEntry):
        return entry
    if isinstance(entry, (str, os.PathLike)):
        path = Path(entry)
        model_type = _model_type(path)
        if model_type not in (None, "segformer"):
            return ModelEntry(name=path.name, family="transformers", path=str(path))
        return ModelEntry(name=path.stem if path.is_file() else path.name, checkpoint=str(path))
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping of model fields or a checkpoint path, got "
                          f"{type(entry).__name__}")
    fields = {k: v for k, v in entry.items() if k != "eval"}
    if "train" in fields:
        if fields.get("checkpoint") is None:
            raise ConfigError(f"{where}: a model with a training recipe is opened from its trained checkpoint; "
                              "run the suite (or segformer-bench train) and pass the checkpoint")
        del fields["train"]
    fields.setdefault("name", str(fields.get("path") or fields.get("checkpoint") or fields.get("factory") or ""))
    return from_mapping(ModelEntry, fields, where)


def _model_type(path: Path) -> str | None:
    config = path / "config.json"
    if not (path.is_dir() and config.is_file()):
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # the reader of either family says what is wrong with it
    return data.get("model_type") if isinstance(data, dict) else None


def open_model(entry: ModelEntry | Mapping[str, Any] | str | os.PathLike, num_classes: int | None = None,
               class_names: Sequence[str] | None = None, where: str = "model entry") -> Segmenter:
    """The Segmenter of a model entry (a suite's ``models:`` item as a mapping or ModelEntry) or checkpoint path.

    `num_classes` (and `class_names`, for a ``class_map`` by name) are the dataset's: the model must predict as
    many classes, or map its own onto them with the entry's ``class_map``. For this package's encoder-only
    checkpoints `num_classes` also sizes the fresh decoder. The model is returned in eval mode on the CPU.
    """
    spec = entry_from(entry, where)
    family = check_entry(spec, where)
    seg = opener(family)(spec, num_classes, where)
    label = f"{where} ({spec.name})" if spec.name else where
    if spec.class_map:
        if num_classes is None:
            raise ConfigError(f"{label}: a class_map needs the dataset's classes; pass num_classes")
        seg.with_class_map(resolve_class_map(spec.class_map, seg.model_classes, seg.model_class_names,
                                             num_classes, class_names, f"{label}.class_map"))
    elif num_classes is not None and seg.num_classes != num_classes:
        raise ConfigError(f"{label}: the model predicts {seg.model_classes} classes but the dataset has "
                          f"{num_classes}; evaluate it on a dataset with its classes, or give the entry a "
                          "class_map (model class → dataset class)")
    return seg.eval()



def model_files(entry: ModelEntry) -> list[Path]:
    """The files (or directories) whose contents identify the entry's model: their hashes go into the store."""
    return [Path(p) for p in (entry.path, entry.config, entry.checkpoint) if p is not None]
