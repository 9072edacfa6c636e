"""The conditions analysis: every model under named conditions — real adverse-condition datasets (ACDC's fog,
night, rain and snow, Dark Zurich, Foggy Cityscapes) or SynthCity rendered in fog, night, rain and snow — next to
a clean reference; mIoU with bootstrap intervals, the drop from clean, calibration, and whether the corruption
benchmark predicts them: the rank agreement across models between each corruption's mIoU and each condition's.

Suite section ``conditions:`` (``ConditionsSpec`` in ``spec.py``); store table ``conditions`` (``store.py``);
running in ``run.py``; the agreement in ``agreement.py``; rendering in ``report.py``. The corruption cells of the
agreement come from this run's store when the suite runs the corruption analysis, else from the run directory
``reference_run`` names (models matched by name and only when their weights hash the same in both runs).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..base import Analysis, ReportPart
from .spec import Condition, ConditionsSpec, reference_name, resolve
from .store import SCHEMA, TABLES

__all__ = ["CONDITIONS", "Condition", "ConditionsSpec"]

if TYPE_CHECKING:
    from ...bench.store import Store
    from ...bench.suite import Suite
    from ..base import RunContext


class ConditionsAnalysis(Analysis):
    name = "conditions"
    title = "adverse conditions"
    section = "conditions"
    spec = ConditionsSpec
    example = ("{reference: clear, conditions: [{name: clear}, {name: night, options: {condition: night}}, "
               "{name: ACDC fog, dataset: acdc, options: {condition: fog}}]}")
    schema = SCHEMA
    tables = TABLES

    def check(self, spec: ConditionsSpec, suite: Suite, where: str) -> None:
        from ...config import ConfigError
        from ...data import DATASETS, check_dataset_options
        from ...errors import UserError

        if not spec.conditions:
            raise ConfigError(f"{where}: the conditions section lists no conditions; add conditions: {self.example}")
        names = [c.name for c in spec.conditions]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: condition names must be unique, got {names}")
        if spec.reference is not None and spec.reference not in names:
            raise ConfigError(f"{where}: conditions.reference {spec.reference!r} is not one of the conditions {names}")
        for i, c in enumerate(spec.conditions):
            at = f"{where}: conditions.conditions[{i}]"
            if not re.fullmatch(r"[^\x00-\x1f]{1,60}", c.name):
                raise ConfigError(f"{at}.name: 1 to 60 printable characters")
            if c.dataset is not None and c.dataset not in DATASETS:
                raise ConfigError(f"{at}.dataset: unknown dataset {c.dataset!r}; choose one of {', '.join(DATASETS)}")
            if c.limit is not None and (type(c.limit) is not int or c.limit < 1):
                raise ConfigError(f"{at}.limit must be a positive number of images (or null for all)")
            resolved = resolve(c, suite)
            try:
                check_dataset_options(resolved.dataset, resolved.options, f"{at}.options")
            except UserError as e:
                raise ConfigError(str(e)) from None

    def resolve_paths(self, spec: ConditionsSpec, resolve_path: Callable[[str | None], str | None]) -> ConditionsSpec:
        return dataclasses.replace(spec, reference_run=resolve_path(spec.reference_run),
                                   conditions=tuple(dataclasses.replace(c, root=resolve_path(c.root))
                                                    for c in spec.conditions))

    def catalogue(self) -> list[tuple[str, list[tuple[str, str]]]]:
        from ...data.synthcity.weather import CONDITIONS as WEATHER
        from ...data.synthcity.weather import DEFAULT_LEVEL, LEVELS

        return [("conditions (a condition's dataset and options)", [
            ("synthcity", f"condition {', '.join(WEATHER)}; level {LEVELS[0]}-{LEVELS[-1]} (default {DEFAULT_LEVEL})"),
            ("acdc", "condition fog, night, rain, snow or all; labels trainIds|labelIds|false; invalid ($ACDC_ROOT)"),
            ("dark_zurich", "night, val; labels; invalid ($DARK_ZURICH_ROOT)"),
            ("foggy_cityscapes", "beta 0.005, 0.01 or 0.02; refined ($FOGGY_CITYSCAPES_ROOT)")])]

    def datasets(self, spec: ConditionsSpec, suite: Suite) -> list[tuple[str, str, str, str | None, dict]]:
        return [(f"conditions.conditions[{i}]", r.dataset, r.split, r.root, r.options)
                for i, r in enumerate(resolve(c, suite) for c in spec.conditions)]

    def describe(self, spec: ConditionsSpec) -> str:
        return f"conditions ({len(spec.conditions)}, reference {reference_name(spec)})"

    def run(self, ctx: RunContext, spec: ConditionsSpec) -> None:
        from ...errors import UserError
        from .run import run_conditions

        if spec.reference_run is not None and not (Path(spec.reference_run) / "results.sqlite").is_file():
            raise UserError(f"conditions.reference_run: {spec.reference_run} holds no results.sqlite; run the "
                            "corruption suite into it first, or remove reference_run")
        run_conditions(ctx, spec)

    def report(self, store: Store, suite: Suite, metadata: Mapping[str, object]) -> ReportPart | None:
        from .report import agreement_part, conditions_part
        from .store import results

        stored = results(store)
        if not stored:
            return None
        spec: ConditionsSpec = suite.section(self.name)
        models = list(spec.models) or [m.name for m in suite.models]
        described = {c.name: _describe(resolve(c, suite).describe()) for c in spec.conditions}
        files, sections = conditions_part(stored, [c.name for c in spec.conditions], reference_name(spec), models,
                                          seed=suite.seed, described=described)
        cells = corruption_cells(store, suite, spec, models)
        if cells is not None:
            from .agreement import rank_agreement

            matrices, corruptions, source = cells
            targets = [c.name for c in spec.conditions if c.name != reference_name(spec)]
            agreements = rank_agreement(matrices, {k: r.per_image for k, r in stored.items()}, corruptions, targets,
                                        models, seed=suite.seed)
            more_files, more_sections = agreement_part(agreements, [c for c, _ in corruptions], targets, source)
            files, sections = files | more_files, sections + more_sections
        return ReportPart(files, sections, {"conditions": ", ".join(described)})


def _describe(d: Mapping[str, object]) -> str:
    options = ", ".join(f"{k} {v}" for k, v in dict(d["options"]).items())
    return f"{d['dataset']} {d['split']}" + (f" ({options})" if options else "")


def corruption_cells(store: Store, suite: Suite, spec: ConditionsSpec, models: list[str]):
    """(cells, [(corruption, severities)], source) for the agreement: this run's corruption cells, else the reference
    run's (models whose weights hash differently there are left out); None when there are none."""
    from ..corruption import CORRUPTION, CorruptionSpec
    from ..corruption import store as cell_tables

    if CORRUPTION.name in suite.analyses and store.has_table("cells"):
        cells = cell_tables.cell_matrices(store)
        if cells:
            return cells, _protocol_cells(suite.section(CORRUPTION.name)), "this run"
    if spec.reference_run is None:
        return None
    from ...bench.store import Store

    path = Path(spec.reference_run) / "results.sqlite"
    if not path.is_file():
        return None
    other = Store(path, read_only=True)
    try:
        stored = other.get_meta("suite")
        if not isinstance(stored, dict) or not other.has_table("cells"):
            return None
        ours, theirs = store.models(), other.models()
        same = {m for m in models if m in ours and m in theirs and ours[m]["sha256"] == theirs[m]["sha256"]}
        cells = {k: v for k, v in cell_tables.cell_matrices(other).items() if k[0] in same}
    finally:
        other.close()
    section = stored.get(CORRUPTION.section) or {}  # the reference run's corruption section, as plain data
    reference = CorruptionSpec(protocol=section.get("protocol", CorruptionSpec.protocol),
                               cells=tuple((c, int(s)) for c, s in section.get("cells") or ()))
    return cells, _protocol_cells(reference), f"the reference run {Path(spec.reference_run).name}"


def _protocol_cells(spec) -> list[tuple[str, list[int]]]:  # spec: a CorruptionSpec
    """(corruption, severities) of the section's protocol (or its explicit cells), in the protocol's order."""
    from ...corruptions.protocols import get_protocol

    protocol = get_protocol(spec.protocol)
    if spec.cells:
        protocol = protocol.restricted(list(spec.cells))
    return [(c, list(protocol.severities_of(c))) for c in protocol.corruptions]


CONDITIONS = ConditionsAnalysis()
