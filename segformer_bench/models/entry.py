"""A model entry: which model, of which family, from which files — a suite's ``models:`` item, as a dataclass.

``open_model`` (``models/open.py``) turns one into a :class:`~segformer_bench.models.segmenter.Segmenter`. The
suite's ``ModelSpec`` extends it with what only a benchmark needs (training, per-model evaluation settings).

Families (the ``family`` field; unset means this package's own, told apart by ``variant``):

* ``segformer``, ``deeplabv3plus``: ``variant`` and a ``checkpoint`` in any layout ``load_model`` reads;
* ``transformers``: ``path``, a directory written by transformers' ``save_pretrained``;
* ``python``: ``factory`` ("package.module:function") called with ``options``, an optional ``checkpoint``
  (a state dict, read with ``weights_only=True``), the declared ``preprocess`` and ``output``, ERF ``taps``
  by module name;
* ``mmseg``: ``config`` and ``checkpoint`` through mmsegmentation's own API (only where it is installed).

``class_map`` (any family) maps the model's classes onto the dataset's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError

FAMILY_NAMES: tuple[str, ...] = ("segformer", "deeplabv3plus", "transformers", "python", "mmseg")
_FACTORY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
                      r"(\.[A-Za-z_][A-Za-z0-9_]*)*")

# The fields each family reads besides name, family, num_classes and class_map (any other set field is refused).
FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    "segformer": ("variant", "checkpoint"),
    "deeplabv3plus": ("variant", "checkpoint"),
    "transformers": ("path", "preprocess", "taps"),
    "python": ("factory", "options", "checkpoint", "preprocess", "output", "taps"),
    "mmseg": ("config", "checkpoint", "preprocess", "taps"),
}
FOREIGN_FIELDS: tuple[str, ...] = ("family", "path", "factory", "options", "preprocess", "output", "taps",
                                   "class_map", "config")


@dataclass(frozen=True)
class ModelEntry:
    name: str  # the row label in reports, e.g. "SegFormer-B0"
    variant: str = "b0"  # this package's models: 'b0'…'b5', 'deeplabv3plus-r50', 'deeplabv3plus-r101'
    checkpoint: str | None = None  # a file (relative to the suite file)
    num_classes: int | None = None  # only for encoder-only checkpoints of this package's models
    family: str | None = None  # one of FAMILY_NAMES; None: segformer or deeplabv3plus by `variant`
    path: str | None = None  # transformers: a save_pretrained directory
    factory: str | None = None  # python: "package.module:function"
    options: dict[str, Any] = field(default_factory=dict)  # python: the factory's keyword arguments
    preprocess: dict[str, Any] = field(default_factory=dict)  # mean, std, scale, channels, size_divisor
    output: dict[str, Any] = field(default_factory=dict)  # python: key (a dict key or tuple index), stride
    taps: dict[str, str] = field(default_factory=dict)  # ERF tap name → module name (forward hooks)
    class_map: dict[Any, Any] = field(default_factory=dict)  # model class → dataset class (or null: dropped)
    config: str | None = None  # mmseg: its config file


def family_of_entry(entry: ModelEntry) -> str:
    """The entry's family: its ``family`` field, or this package's family of its variant."""
    if entry.family is not None:
        return entry.family
    from .registry import family_of

    return family_of(entry.variant).name


def check_entry(entry: ModelEntry, where: str) -> str:
    """The entry's family, after checking that its fields fit it (one ConfigError naming `where` otherwise)."""
    if entry.family is not None and entry.family not in FAMILY_NAMES:
        raise ConfigError(f"{where}.family {entry.family!r}: choose one of {', '.join(FAMILY_NAMES)}")
    family = family_of_entry(entry)
    allowed = {"name", "family", "num_classes", "class_map", *FAMILY_FIELDS[family]}
    defaults = ModelEntry(name="")
    stray = [f for f in ("variant", "checkpoint", *FOREIGN_FIELDS)
             if f not in allowed and getattr(entry, f) != getattr(defaults, f)]
    if stray:
        raise ConfigError(f"{where}: field(s) {', '.join(stray)} do not apply to family {family!r} (it reads "
                          f"{', '.join(FAMILY_FIELDS[family])})")
    required = {"transformers": ("path",), "python": ("factory",), "mmseg": ("config", "checkpoint")}.get(family, ())
    missing = [f for f in required if getattr(entry, f) is None]
    if missing:
        raise ConfigError(f"{where}: family {family!r} needs {' and '.join(missing)}")
    if entry.factory is not None and not _FACTORY.fullmatch(entry.factory):
        raise ConfigError(f"{where}.factory {entry.factory!r}: write it as 'package.module:function'")
    for name in ("options", "preprocess", "output", "taps", "class_map"):
        if not isinstance(getattr(entry, name), dict):
            raise ConfigError(f"{where}.{name} must be a mapping")
    for tap, module in entry.taps.items():
        if not isinstance(tap, str) or not isinstance(module, str) or not module:
            raise ConfigError(f"{where}.taps: write each as 'name: module.path' (got {tap!r}: {module!r})")
    return family
