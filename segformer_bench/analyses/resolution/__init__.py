"""The resolution-shift analysis (the SegFormer paper's Table 1c: Mix-FFN against a positional encoding):
every model at every test resolution, the change from a baseline test with paired bootstrap intervals, and
mIoU against the network's input size.

Suite section ``resolution:`` (``ResolutionSpec``); store table ``resolution`` (``store.py``); running in
``run.py``; rendering in ``report.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...bench.specs import EvalSpec
from ...bench.store import Store
from ..base import Analysis, ReportPart
from .store import SCHEMA, TABLES

if TYPE_CHECKING:
    from ...bench.suite import Suite
    from ..base import RunContext


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


class ResolutionAnalysis(Analysis):
    name = "resolution"
    title = "resolution shift"
    section = "resolution"
    spec = ResolutionSpec
    example = "{tests: [{name: ..., eval: {...}}, ...]}"
    schema = SCHEMA
    tables = TABLES

    def check(self, spec: ResolutionSpec, suite: Suite, where: str) -> None:
        from ...bench.specs import check_eval
        from ...config import ConfigError

        if not spec.tests:
            raise ConfigError(f"{where}: the resolution section has no tests; "
                              "add resolution: {tests: [{name: ..., eval: {...}}, ...]}")
        tests = [t.name for t in spec.tests]
        if len(set(tests)) != len(tests):
            raise ConfigError(f"{where}: resolution test names must be unique, got {tests}")
        if spec.baseline is not None and spec.baseline not in tests:
            raise ConfigError(f"{where}: resolution.baseline {spec.baseline!r} is not one of the tests {tests}")
        for i, t in enumerate(spec.tests):
            check_eval(t.eval, f"{where}: resolution.tests[{i}].eval")

    def describe(self, spec: ResolutionSpec) -> str:
        return f"resolution ({len(spec.tests)} tests)"

    def run(self, ctx: RunContext, spec: ResolutionSpec) -> None:
        from .run import run_tests

        run_tests(ctx, spec)

    def report(self, store: Store, suite: Suite, metadata: Mapping[str, object]) -> ReportPart | None:
        from .report import resolution_calibration, resolution_report
        from .store import results

        stored = results(store)
        if not stored:
            return None
        spec: ResolutionSpec = suite.section(self.name)
        published = suite.include_published and suite.dataset.name == "cityscapes"
        models = list(spec.models) or [m.name for m in suite.models]
        files, sections = resolution_report(stored, [t.name for t in spec.tests], spec.baseline, published,
                                            seed=suite.seed, expected=[(m, t.name) for m in models for t in spec.tests])
        more_files, more_sections = resolution_calibration(stored, [t.name for t in spec.tests], models,
                                                           seed=suite.seed)
        return ReportPart(files | more_files, sections + more_sections)


RESOLUTION = ResolutionAnalysis()
