"""Running the conditions analysis: every (model, condition) pair not yet stored, one row each.

Every condition's dataset is opened before anything is evaluated, so a missing root or an empty split is one
line before any unit is written. Under torchrun the images of each condition are sharded over the ranks by
``evaluate``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...calibration import DEFAULT_BINS
from ...data import build_dataset
from ...data.base import SegmentationDataset
from ...engine.evaluate import eval_settings, evaluate
from . import store as tables
from .spec import ResolvedCondition, resolve

if TYPE_CHECKING:
    from ..base import RunContext
    from .spec import ConditionsSpec


def open_condition(condition: ResolvedCondition) -> SegmentationDataset:
    return build_dataset(condition.dataset, condition.split, condition.root, **condition.options)


def run_conditions(ctx: RunContext, spec: ConditionsSpec) -> None:
    """Every (model, condition) of the section that is not stored yet."""
    suite, store = ctx.suite, ctx.store
    conditions = [resolve(c, suite) for c in spec.conditions]
    models = ctx.models(spec.models)
    todo = {m.name: ctx.shared([c.name for c in conditions
                                if not (ctx.main and tables.has_result(store, m.name, c.name))]) for m in models}
    wanted = {name for names in todo.values() for name in names}
    datasets = {c.name: open_condition(c) for c in conditions if c.name in wanted}
    bar = ctx.bar(len(models) * len(conditions), "conditions", "condition")
    try:
        for model_spec in models:
            bar.update(len(conditions) - len(todo[model_spec.name]))
            settings = eval_settings(suite.eval.preset, suite.eval.overrides, model_spec.eval,
                                     where=f"{suite.source}: model {model_spec.name!r}, eval")
            for condition in (c for c in conditions if c.name in todo[model_spec.name]):
                dataset = datasets[condition.name]
                model = ctx.model(model_spec, dataset)
                result = evaluate(model, dataset, settings, ctx.device, limit=condition.limit, progress=ctx.progress,
                                  calibration_bins=DEFAULT_BINS, desc=f"{model_spec.name} {condition.name}")
                if ctx.main:
                    tables.add_result(store, model_spec.name, condition.name, result.metrics, result.per_image,
                                      result.names, condition.describe(), result.calibration, suite.seed,
                                      result.seconds)
                bar.update(1)
    finally:
        bar.close()
