"""The adversarial analysis: how far each model's mIoU falls under white-box attacks (PGD, SegPGD, CosPGD) of
growing budget, per image, with the store, intervals and reports of the other analyses.

Suite section ``adversarial:`` (``AdversarialSpec``); store table ``adversarial`` (``store.py``): one row per
(model, attack, ε) with per-image confusion matrices and losses; running in ``run.py`` (the attacks of
``segformer_bench.attacks`` through the model *as it is evaluated*: the suite's eval settings, whole image or
sliding window — a sliding-window model is attacked through all its windows at once, the logits it is scored
on — at one test scale without flipping); rendering in ``report.py``. ε = 0 is the clean evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..base import Analysis, ReportPart
from .spec import AdversarialSpec, AttackSpec, eps_text
from .store import SCHEMA, TABLES

__all__ = ["ADVERSARIAL", "AdversarialSpec", "AttackSpec", "eps_text"]

if TYPE_CHECKING:
    from ...bench.store import Store
    from ...bench.suite import Suite
    from ..base import RunContext

class AdversarialAnalysis(Analysis):
    name = "adversarial"
    title = "adversarial robustness"
    section = "adversarial"
    spec = AdversarialSpec
    example = "{attacks: [{method: pgd, norm: linf, eps: [0, 1, 2, 4, 8], steps: 10}]}"
    schema = SCHEMA
    tables = TABLES

    def check(self, spec: AdversarialSpec, suite: Suite, where: str) -> None:
        from ...attacks import check_attack
        from ...config import ConfigError
        from ...errors import UserError

        if not spec.attacks:
            raise ConfigError(f"{where}: the adversarial section has no attacks; add adversarial: {self.example}")
        labels = [a.label for a in spec.attacks]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{where}: adversarial attacks need distinct names (give each a name:), got {labels}")
        for i, a in enumerate(spec.attacks):
            at = f"{where}: adversarial.attacks[{i}]"
            if not a.eps or len(set(a.eps)) != len(a.eps):
                raise ConfigError(f"{at}.eps: list each budget once (in 1/255 units, e.g. [0, 1, 2, 4, 8])")
            if a.name is not None and not re.fullmatch(r"[^\x00-\x1f]{1,60}", a.name):
                raise ConfigError(f"{at}.name: 1 to 60 printable characters")
            if type(a.restarts) is not int or a.restarts < 1:
                raise ConfigError(f"{at}.restarts must be a whole number ≥ 1, got {a.restarts!r}")
            try:
                for eps in a.eps:
                    check_attack(a.method, a.norm, eps / 255, a.steps, None if a.alpha is None else a.alpha / 255)
            except UserError as e:
                raise ConfigError(f"{at}: {e}") from None
        every = {e for a in spec.attacks for e in a.eps}
        if spec.headline_eps is not None and spec.headline_eps not in every:
            raise ConfigError(f"{where}: adversarial.headline_eps {spec.headline_eps:g} is none of the attacks' eps "
                              f"({', '.join(f'{e:g}' for e in sorted(every))})")
        from ...engine.evaluate import eval_settings

        for m in suite.models:
            if spec.models and m.name not in spec.models:
                continue
            settings = eval_settings(suite.eval.preset, suite.eval.overrides, m.eval, where=f"{where}: eval")
            if settings.scales != (1.0,) or settings.flip:
                raise ConfigError(f"{where}: model {m.name!r} is evaluated at several scales or flipped, which an "
                                  "attack cannot follow; use one scale without flip for the adversarial analysis")

    def describe(self, spec: AdversarialSpec) -> str:
        units = sum(len(a.eps) for a in spec.attacks)
        return f"adversarial ({len(spec.attacks)} attacks, {units} budgets)"

    def run(self, ctx: RunContext, spec: AdversarialSpec) -> None:
        from .run import run_units

        run_units(ctx, spec)

    def report(self, store: Store, suite: Suite, metadata: Mapping[str, object]) -> ReportPart | None:
        from ...data import class_names
        from .report import adversarial_report
        from .store import gallery, results

        stored = results(store)
        if not stored:
            return None
        spec: AdversarialSpec = suite.section(self.name)
        models = list(spec.models) or [m.name for m in suite.models]
        pictures = gallery(store) if "gallery" in suite.reports else None
        files, sections = adversarial_report(stored, spec, models, seed=suite.seed, gallery=pictures,
                                             num_classes=len(class_names(suite.dataset.name)))
        return ReportPart(files, sections, {"attacks": ", ".join(
            f"{a.label} ({a.steps} steps, ε {', '.join(eps_text(e) for e in a.eps)})" for a in spec.attacks)})


ADVERSARIAL = AdversarialAnalysis()
