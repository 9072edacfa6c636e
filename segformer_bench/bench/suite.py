"""Benchmark suites: small, flat, versioned YAML files read into dataclasses.

A suite says which models (a checkpoint in any layout ``load_model`` reads, or a training recipe to run
first), on which dataset, evaluated how, which analyses to run, with which seed, and which reports to
render. The fields here are those every analysis shares; each analysis of the registry
(``segformer_bench.analyses.ANALYSES``) reads its own section (``corruptions:``, ``resolution:``, ``erf:``)
into its own dataclass, kept in ``Suite.sections``. ``load_suite`` checks every key and type and names the
file, the field and what is allowed. Relative paths in a suite (checkpoints, a training run's ``pretrained``
file, dataset roots, a corrupted tree, the report directory) are relative to the suite file, not to the
current directory.

A suite's name becomes the directories ``runs/<name>`` and ``reports/<name>``, and a trained model's name the
directory ``<run dir>/train/<name>``: the loader refuses a suite name that is not a plain directory name (a
path, ``..``, a separator) and two models whose names give one training directory, so that nothing is
written outside those directories and no two models share one.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..analyses import ANALYSES
from ..config import ConfigError, check_fields, from_mapping, load_yaml, to_mapping
from ..models.entry import FOREIGN_FIELDS, ModelEntry
from .specs import DatasetSpec, EvalSpec, ModelSpec, TrainSpec, check_eval, check_eval_overrides

SUITE_VERSION = 1
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # a directory name on every file system; not . or ..


def _suites_dir() -> Path:
    """The repository's suites/ in a checkout; the copy shipped as segformer_bench/suites in an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    return package.parent / "suites" if (package.parent / "suites").is_dir() else package / "suites"


SUITES_DIR = _suites_dir()


@dataclass(frozen=True)
class Suite:
    name: str
    models: tuple[ModelSpec, ...]
    version: int = SUITE_VERSION
    analyses: tuple[str, ...] = ("corruption",)  # names in segformer_bench.analyses.ANALYSES, run in this order
    description: str = ""
    dataset: DatasetSpec = DatasetSpec()
    eval: EvalSpec = EvalSpec()
    seed: int = 0
    device: str = "auto"
    reference_model: str | None = None  # the model CD/rCD are relative to
    reports: tuple[Literal["tables", "plots", "html", "gallery"], ...] = ("tables", "plots", "html", "gallery")
    include_published: bool = False  # add the paper's rows to the tables, labelled as published
    report_dir: str | None = None  # default: reports/<name> next to the suites directory
    # Every registered analysis's section (its dataclass, or None when it is absent and required), by
    # analysis name; filled by the loader from the analyses' own suite keys, never a key of the file itself.
    sections: dict[str, Any] = field(default_factory=dict)
    source: str = field(default="", compare=False)  # the file it was read from

    def section(self, analysis: str) -> Any:
        """The settings of `analysis` (its section dataclass)."""
        return self.sections[analysis]

    def to_dict(self) -> dict:
        """The resolved suite as plain data (as stored with the results): the shared fields, then each
        analysis's section under its own suite key."""
        data = to_mapping(self)
        del data["sections"], data["source"]
        unset = to_mapping(ModelEntry(name=""))
        for model in data["models"]:  # fields of other families, unset: as suites stored before they existed
            for key in FOREIGN_FIELDS:
                if model[key] == unset[key]:
                    del model[key]
        for name, analysis in ANALYSES.items():
            spec = self.sections.get(name)
            data[analysis.section] = None if spec is None else to_mapping(spec)
        return data


def training_dir_name(model: str) -> str:
    """The directory a model of the suite trains into (``<run dir>/train/<this>``): its name with every run of
    characters other than letters, digits, '.', '_' and '-' as one '_', and no leading or trailing '.' or '_'
    (so never '.' or '..'); empty when nothing is left (the loader refuses such a name)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._")


def check_suite_name(name: str, where: str) -> None:
    """A ConfigError unless `name` can be the directory runs/<name> (and reports/<name>) and nothing else."""
    if not _PLAIN_NAME.fullmatch(name):
        raise ConfigError(f"{where}: field 'name' {name!r} names the directories runs/<name> and reports/<name>, "
                          "so it must be a plain name of at most 100 letters, digits, '.', '_' or '-' that starts "
                          "with a letter or digit (no '/', '\\' or '..'); rename the suite")


def train_config(model: ModelSpec, suite: Suite, where: str):  # -> engine.train.TrainConfig
    """The TrainConfig a model of the suite trains with: its preset with its overrides laid over it, its variant,
    and the suite's seed and device; a ConfigError naming `where` and the model for a bad field or value."""
    from ..engine.train import TRAIN_PRESETS, TrainConfig

    assert model.train is not None
    fields = {**to_mapping(TRAIN_PRESETS[model.train.preset]), **model.train.overrides, "model": model.variant,
              "seed": suite.seed, "device": suite.device}
    index = next(i for i, m in enumerate(suite.models) if m.name == model.name)
    return from_mapping(TrainConfig, fields, f"{where}: models[{index}].train.overrides ({model.name})")


def _check_names(suite: Suite, where: str) -> None:
    """The suite's name and its trained models' names are safe, distinct directory names."""
    check_suite_name(suite.name, where)
    trained: dict[str, str] = {}
    for i, m in enumerate(suite.models):
        if m.train is None:
            continue
        directory = training_dir_name(m.name)
        if not directory:
            raise ConfigError(f"{where}: models[{i}].name {m.name!r} has no letter or digit to name its training "
                              "directory (train/<name>); rename the model")
        other = trained.setdefault(directory.lower(), m.name)  # lower: one directory on case-blind file systems
        if other != m.name:
            raise ConfigError(f"{where}: models {other!r} and {m.name!r} would train into the same directory "
                              f"train/{directory}; rename one of them")


def _shared_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(Suite) if f.name not in ("sections", "source")]


def _check(suite: Suite, where: str) -> None:
    from ..engine.train import MAX_SEED, TRAIN_PRESETS
    from ..errors import UserError
    from ..models.entry import check_entry
    from ..models.registry import variant_name

    if suite.version != SUITE_VERSION:
        raise ConfigError(f"{where}: suite version {suite.version} is not supported "
                          f"(this package reads version {SUITE_VERSION})")
    if not 0 <= suite.seed <= MAX_SEED:
        raise ConfigError(f"{where}: field 'seed' {suite.seed} is out of range: use an integer from 0 to 2^63 − 1 "
                          f"({MAX_SEED})")
    if not suite.models:
        raise ConfigError(f"{where}: field 'models' is empty; name at least one model")
    names = [m.name for m in suite.models]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: model names must be unique, got {names}")
    _check_names(suite, where)
    for i, m in enumerate(suite.models):
        if m.family in (None, "segformer", "deeplabv3plus"):
            try:
                variant_name(m.variant)
            except UserError as e:
                raise ConfigError(f"{where}: models[{i}].variant: {e}") from None
        family = check_entry(m, f"{where}: models[{i}]")
        if family in ("segformer", "deeplabv3plus") and (m.checkpoint is None) == (m.train is None):
            raise ConfigError(f"{where}: models[{i}] ({m.name}) needs exactly one of 'checkpoint' or 'train'")
        if family not in ("segformer", "deeplabv3plus") and m.train is not None:
            raise ConfigError(f"{where}: models[{i}] ({m.name}): family {family!r} is evaluated, not trained here; "
                              "remove 'train'")
        if m.train is not None and m.train.preset not in TRAIN_PRESETS:
            raise ConfigError(f"{where}: models[{i}].train.preset {m.train.preset!r}: choose one of "
                              f"{', '.join(TRAIN_PRESETS)}")
        if m.train is not None:
            train_config(m, suite, where)  # its fields and values, before anything is trained or written
    if suite.reference_model is not None and suite.reference_model not in names:
        raise ConfigError(f"{where}: reference_model {suite.reference_model!r} is not one of the models {names}")
    check_eval(suite.eval, f"{where}: eval")
    if not suite.analyses or len(set(suite.analyses)) != len(suite.analyses):
        raise ConfigError(f"{where}: analyses must name each of {', '.join(ANALYSES)} at most once, "
                          f"and at least one; got {list(suite.analyses)}")
    for name, analysis in ANALYSES.items():
        unknown = [m for m in getattr(suite.sections.get(name), "models", ()) if m not in names]
        if unknown:
            raise ConfigError(f"{where}: {analysis.section}.models {unknown} are not among the models {names}")
    for i, m in enumerate(suite.models):
        check_eval_overrides(m.eval, f"{where}: models[{i}].eval")
    for name, spec in suite.sections.items():
        if spec is not None:
            ANALYSES[name].check(spec, suite, where)


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

    models = tuple(dataclasses.replace(m, checkpoint=resolve(m.checkpoint), path=resolve(m.path),
                                       config=resolve(m.config), train=resolve_train(m.train))
                   for m in suite.models)
    sections = {name: spec if spec is None else ANALYSES[name].resolve_paths(spec, resolve)
                for name, spec in suite.sections.items()}
    dataset = dataclasses.replace(suite.dataset, root=resolve(suite.dataset.root))
    return dataclasses.replace(suite, models=models, sections=sections, dataset=dataset,
                               report_dir=resolve(suite.report_dir))


def suite_from_mapping(data: object, where: str) -> Suite:
    """A checked Suite from plain data (a suite file's, or the resolved suite a store holds)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of suite fields, got {type(data).__name__}")
    keys = {a.section: name for name, a in ANALYSES.items()}
    check_fields(data, [*_shared_fields(), *keys], where)
    analyses = data.get("analyses", Suite.analyses)
    if isinstance(analyses, list | tuple):
        for i, a in enumerate(analyses):
            if a not in ANALYSES:
                raise ConfigError(f"{where}: field 'analyses'[{i}]: expected "
                                  f"{' or '.join(map(repr, ANALYSES))}, got {a!r}")
    sections = {}
    for key, name in keys.items():
        analysis, value = ANALYSES[name], data.get(key)
        sections[name] = analysis.default() if value is None else \
            from_mapping(analysis.spec, value, f"{where}: field '{key}'")
        if sections[name] is None and name in (analyses or ()):
            raise ConfigError(f"{where}: analyses names {name!r} but there is no {key} section; "
                              f"add {key}: {analysis.example}")
    suite = from_mapping(Suite, {k: v for k, v in data.items() if k not in keys}, where)
    suite = dataclasses.replace(suite, sections=sections)
    _check(suite, where)
    return suite


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
    suite = suite_from_mapping(load_yaml(path), str(path))
    return dataclasses.replace(_resolve_paths(suite, path.parent.resolve()), source=str(path))


def list_suites() -> list[tuple[str, str]]:
    """(name, description) of the suites shipped in suites/."""
    out = []
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        data = load_yaml(path) or {}
        out.append((path.stem, str(data.get("description", "")).strip().splitlines()[0] if data.get("description")
                    else ""))
    return out
