"""The adversarial analysis's suite section: its attacks and settings (``AdversarialSpec``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NORM_LABELS = {"linf": "L∞", "l2": "L2"}
METHOD_LABELS = {"pgd": "PGD", "segpgd": "SegPGD", "cospgd": "CosPGD"}


@dataclass(frozen=True)
class AttackSpec:
    """One attack of the section, run at every ε of `eps` (in 1/255 units: 8 means ε = 8/255)."""

    method: str = "pgd"  # pgd, segpgd or cospgd
    norm: str = "linf"  # linf or l2
    eps: tuple[float, ...] = (0, 1, 2, 4, 8)  # budgets in 1/255 of the 0–1 scale (as papers write 8/255)
    steps: int = 10
    alpha: float | None = None  # step size in 1/255 units; default 2.5·ε / steps
    restarts: int = 1  # random starts; per image the one with the highest loss is kept
    random_start: bool = True
    name: str | None = None  # the column label; default e.g. "PGD L∞ 10"

    @property
    def label(self) -> str:
        return self.name or f"{METHOD_LABELS.get(self.method, self.method)} {NORM_LABELS.get(self.norm, self.norm)}"


@dataclass(frozen=True)
class AdversarialSpec:
    attacks: tuple[AttackSpec, ...] = ()
    models: tuple[str, ...] = ()  # default: all
    headline_eps: float | None = None  # "robust mIoU" at this ε (1/255 units); default the largest
    quantize: bool = False  # round each adversarial image to the 1/255 grid inside its budget
    dataset_options: dict[str, Any] = field(default_factory=dict)


def eps_text(eps: float) -> str:
    """'8/255', '0.5/255', '0' for an ε in 1/255 units."""
    return "0" if eps == 0 else f"{eps:g}/255"
