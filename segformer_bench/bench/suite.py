"""Benchmark suites: small, flat, versioned YAML files read into dataclasses.

A suite says which models (a checkpoint in any layout ``load_model`` reads, or a training recipe to run
first), on which dataset, evaluated how, under which corruptions, with which seed, and which reports to
render. ``load_suite`` checks every key and type and names the file, the field and what is allowed.
Relative paths in a suite (checkpoints, a training run's ``pretrained`` file, dataset roots, a corrupted
tree, the report directory) are relative to the suite file, not to the current directory.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import ConfigError, from_mapping, load_yaml, to_mapping

SUITE_VERSION = 1


def _suites_dir() -> Path:
    """The repository's suites/ in a checkout; the copy shipped as segformer_bench/suites in an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    return package.parent / "suites" if (package.parent / "suites").is_dir() else package / "suites"


SUITES_DIR = _suites_dir()


@dataclass(frozen=True)
class TrainSpec:
    """Train the model first: a TrainConfig preset with fields laid over it."""

    preset: str = "synthcity"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the row label in reports, e.g. "SegFormer-B0"
    variant: str = "b0"
    checkpoint: str | None = None  # relative to the suite file; or null and `train`
    train: TrainSpec | None = None
    num_classes: int | None = None  # only for encoder-only checkpoints
    eval: dict[str, Any] = field(default_factory=dict)  # EvalSettings fields for this model only (ADE B5: 640)


@dataclass(frozen=True)
class DatasetSpec:
    name: Literal["synthcity", "cityscapes", "ade20k"] = "synthcity"
    root: str | None = None  # default: $CITYSCAPES_ROOT / $ADE20K_ROOT
    split: str = "val"
    limit: int | None = None  # evaluate the first N images only
    options: dict[str, Any] = field(default_factory=dict)  # SynthCity: size, length, seed


@dataclass(frozen=True)
class EvalSpec:
    preset: str = "whole"  # an evaluate.EVAL_PRESETS name
    overrides: dict[str, Any] = field(default_factory=dict)  # EvalSettings fields


@dataclass(frozen=True)
class CorruptionSpec:
    protocol: str = "segformer"
    cells: tuple[tuple[str, int], ...] = ()  # explicit (corruption, severity) pairs instead of the protocol's
    source: Literal["on-the-fly", "tree"] = "on-the-fly"
    tree: str | None = None  # a directory written by `segformer-bench corrupt` (source: tree)
    backend: Literal["fast", "torch", "reference"] = "fast"
    models: tuple[str, ...] = ()  # the models to corrupt-test; default: all


@dataclass(frozen=True)
class ResolutionTest:
    """One test resolution: how the images are made (dataset options over the suite's) and run (eval)."""

    name: str  # the column label, e.g. "768×768 slide"
    eval: EvalSpec = EvalSpec()
    dataset_options: dict[str, Any] = field(default_factory=dict)  # SynthCity: a larger size renders the same scenes


@dataclass(frozen=True)
class ResolutionSpec:
    """The resolution-shift analysis: every model at every test; the drop is measured from `baseline`."""

    tests: tuple[ResolutionTest, ...] = ()
    models: tuple[str, ...] = ()  # default: all
    baseline: str | None = None  # a test name; default: the first test


@dataclass(frozen=True)
class ERFSpec:
    """The effective-receptive-field analysis over the first `images` images of the suite's dataset."""

    images: int = 100
    names: tuple[str, ...] = ()  # explicit image names (as the dataset names them) instead of the first `images`
    size: tuple[int, int] = (1024, 1024)  # input (H, W): each image resized to cover it, then centre-cropped
    models: tuple[str, ...] = ()  # default: all
    taps: tuple[str, ...] = ()  # default: every tap of erf.TAPS (stage1…stage4, fused, logits)
    block: int = 4  # images per batch and per stored block (the unit a resumed run restarts from)
    dataset_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    models: tuple[ModelSpec, ...]
    version: int = SUITE_VERSION
    analyses: tuple[Literal["corruption", "resolution", "erf"], ...] = ("corruption",)
    description: str = ""
    dataset: DatasetSpec = DatasetSpec()
    eval: EvalSpec = EvalSpec()
    corruptions: CorruptionSpec = CorruptionSpec()
    resolution: ResolutionSpec | None = None
    erf: ERFSpec | None = None
    seed: int = 0
    device: str = "auto"
    reference_model: str | None = None  # the model CD/rCD are relative to
    reports: tuple[Literal["tables", "plots", "html", "gallery"], ...] = ("tables", "plots", "html", "gallery")
    include_published: bool = False  # add the paper's rows to the tables, labelled as published
    report_dir: str | None = None  # default: reports/<name> next to the suites directory
    source: str = field(default="", compare=False)  # the file it was read from

    def to_dict(self) -> dict:
        data = to_mapping(self)
        data.pop("source")
        return data


def _check(suite: Suite, where: str) -> None:
    from ..corruptions import check_name, check_severity
    from ..corruptions.protocols import get_protocol
    from ..engine.evaluate import EVAL_PRESETS
    from ..engine.train import TRAIN_PRESETS
    from ..errors import UserError
    from ..models.registry import variant_name

    if suite.version != SUITE_VERSION:
        raise ConfigError(f"{where}: suite version {suite.version} is not supported "
                          f"(this package reads version {SUITE_VERSION})")
    if not suite.models:
        raise ConfigError(f"{where}: field 'models' is empty; name at least one model")
    names = [m.name for m in suite.models]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: model names must be unique, got {names}")
    for i, m in enumerate(suite.models):
        try:
            variant_name(m.variant)
        except UserError as e:
            raise ConfigError(f"{where}: models[{i}].variant: {e}") from None
        if (m.checkpoint is None) == (m.train is None):
            raise ConfigError(f"{where}: models[{i}] ({m.name}) needs exactly one of 'checkpoint' or 'train'")
        if m.train is not None and m.train.preset not in TRAIN_PRESETS:
            raise ConfigError(f"{where}: models[{i}].train.preset {m.train.preset!r}: choose one of "
                              f"{', '.join(TRAIN_PRESETS)}")
    if suite.reference_model is not None and suite.reference_model not in names:
        raise ConfigError(f"{where}: reference_model {suite.reference_model!r} is not one of the models {names}")
    if suite.eval.preset not in EVAL_PRESETS:
        raise ConfigError(f"{where}: eval.preset {suite.eval.preset!r}: choose one of {', '.join(EVAL_PRESETS)}")
    try:
        get_protocol(suite.corruptions.protocol)
        for c, s in suite.corruptions.cells:
            check_name(c)
            check_severity(s)
    except UserError as e:
        raise ConfigError(f"{where}: corruptions: {e}") from None
    if suite.corruptions.source == "tree" and not suite.corruptions.tree:
        raise ConfigError(f"{where}: corruptions.source is 'tree' but corruptions.tree names no directory")
    if not suite.analyses or len(set(suite.analyses)) != len(suite.analyses):
        raise ConfigError(f"{where}: analyses must name each of corruption, resolution, erf at most once, "
                          f"and at least one; got {list(suite.analyses)}")
    for section, spec in (("corruptions", suite.corruptions), ("resolution", suite.resolution), ("erf", suite.erf)):
        unknown = [m for m in getattr(spec, "models", ()) if m not in names]
        if unknown:
            raise ConfigError(f"{where}: {section}.models {unknown} are not among the models {names}")
    for i, m in enumerate(suite.models):
        _check_eval_overrides(m.eval, f"{where}: models[{i}].eval")
    _check_eval_overrides(suite.eval.overrides, f"{where}: eval.overrides")
    if "resolution" in suite.analyses:
        _check_resolution(suite.resolution, where)
    if "erf" in suite.analyses:
        _check_erf(suite.erf, where)


def _check_eval_overrides(overrides: dict[str, Any], where: str) -> None:
    from ..engine.evaluate import eval_settings

    eval_settings("whole", overrides, where=where)


def _check_resolution(spec: ResolutionSpec | None, where: str) -> None:
    from ..engine.evaluate import EVAL_PRESETS

    if spec is None or not spec.tests:
        raise ConfigError(f"{where}: analyses names 'resolution' but there is no resolution section with tests; "
                          "add resolution: {tests: [{name: ..., eval: {...}}, ...]}")
    tests = [t.name for t in spec.tests]
    if len(set(tests)) != len(tests):
        raise ConfigError(f"{where}: resolution test names must be unique, got {tests}")
    if spec.baseline is not None and spec.baseline not in tests:
        raise ConfigError(f"{where}: resolution.baseline {spec.baseline!r} is not one of the tests {tests}")
    for i, t in enumerate(spec.tests):
        if t.eval.preset not in EVAL_PRESETS:
            raise ConfigError(f"{where}: resolution.tests[{i}].eval.preset {t.eval.preset!r}: choose one of "
                              f"{', '.join(EVAL_PRESETS)}")
        _check_eval_overrides(t.eval.overrides, f"{where}: resolution.tests[{i}].eval.overrides")


def _check_erf(spec: ERFSpec | None, where: str) -> None:
    from ..analyses.erf.maps import TAPS

    if spec is None:
        raise ConfigError(f"{where}: analyses names 'erf' but there is no erf section; add erf: {{images: 100}}")
    if spec.images < 1 or spec.block < 1 or min(spec.size) < 32:
        raise ConfigError(f"{where}: erf needs images ≥ 1, block ≥ 1 and a size of at least 32×32")
    if len(set(spec.names)) != len(spec.names):
        raise ConfigError(f"{where}: erf.names lists an image more than once")
    bad = [t for t in spec.taps if t not in TAPS]
    if bad:
        raise ConfigError(f"{where}: erf.taps {bad}: choose from {', '.join(TAPS)}")


def _resolve_paths(suite: Suite, base: Path) -> Suite:
    def resolve(p: str | None) -> str | None:
        if p is None:
            return None
        path = Path(os.path.expandvars(p)).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())

    def resolve_train(t: TrainSpec | None) -> TrainSpec | None:
        if t is None or not isinstance(t.overrides.get("pretrained"), str):
            return t
        return dataclasses.replace(t, overrides={**t.overrides, "pretrained": resolve(t.overrides["pretrained"])})

    models = tuple(dataclasses.replace(m, checkpoint=resolve(m.checkpoint), train=resolve_train(m.train))
                   for m in suite.models)
    corruptions = dataclasses.replace(suite.corruptions, tree=resolve(suite.corruptions.tree))
    dataset = dataclasses.replace(suite.dataset, root=resolve(suite.dataset.root))
    return dataclasses.replace(suite, models=models, corruptions=corruptions, dataset=dataset,
                               report_dir=resolve(suite.report_dir))


def find_suite(name_or_path: str | os.PathLike) -> Path:
    """A suite file by path, or by name in the package's suites/ directory (``quickstart``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = SUITES_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))) or "none"
    raise ConfigError(f"{name_or_path}: no such suite file (suites in {SUITES_DIR}: {known})")


def load_suite(name_or_path: str | os.PathLike) -> Suite:
    """Read and check a suite; relative paths inside it are resolved against its directory."""
    path = find_suite(name_or_path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of suite fields, got {type(data).__name__}")
    suite = from_mapping(Suite, data, str(path))
    _check(suite, str(path))
    return dataclasses.replace(_resolve_paths(suite, path.parent.resolve()), source=str(path))


def list_suites() -> list[tuple[str, str]]:
    """(name, description) of the suites shipped in suites/."""
    out = []
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        data = load_yaml(path) or {}
        out.append((path.stem, str(data.get("description", "")).strip().splitlines()[0] if data.get("description")
                    else ""))
    return out
