"""The conditions analysis's suite section (``ConditionsSpec``): named conditions, each a dataset, split and
options, and the clean reference among them.

A condition that names no dataset, or the suite's own, starts from the suite's dataset section (root, split,
limit, options) and lays its own fields over it — so ``{name: fog, options: {condition: fog}}`` is the suite's
SynthCity in fog, with the suite's size and length. A condition naming another dataset (``acdc``,
``dark_zurich``, ``foggy_cityscapes``, ``cityscapes``…) takes only its own fields (split ``val`` by default, the
root from its environment variable when none is given).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...bench.suite import Suite


@dataclass(frozen=True)
class Condition:
    name: str  # the column label, e.g. "ACDC night" or "fog 300 m"
    dataset: str | None = None  # default: the suite's dataset
    split: str | None = None
    root: str | None = None
    limit: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConditionsSpec:
    conditions: tuple[Condition, ...] = ()
    reference: str | None = None  # the clean condition's name; default: the first
    models: tuple[str, ...] = ()  # default: all
    reference_run: str | None = None  # a run directory whose corruption cells the agreement uses (default: this one)


@dataclass(frozen=True)
class ResolvedCondition:
    """What a condition evaluates: a dataset by name, split, root, options and image limit."""

    name: str
    dataset: str
    split: str
    root: str | None
    limit: int | None
    options: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """As stored with each unit (the root left out: the same data may live elsewhere on another machine)."""
        return {"dataset": self.dataset, "split": self.split, "limit": self.limit, "options": self.options}


def resolve(condition: Condition, suite: Suite) -> ResolvedCondition:
    """`condition` with the suite's dataset section under it when it is the suite's dataset."""
    d = suite.dataset
    if condition.dataset is None or condition.dataset == d.name:
        return ResolvedCondition(condition.name, d.name, condition.split or d.split, condition.root or d.root,
                                 condition.limit if condition.limit is not None else d.limit,
                                 {**d.options, **condition.options})
    return ResolvedCondition(condition.name, condition.dataset, condition.split or "val", condition.root,
                             condition.limit, dict(condition.options))


def reference_name(spec: ConditionsSpec) -> str:
    return spec.reference if spec.reference is not None else spec.conditions[0].name
