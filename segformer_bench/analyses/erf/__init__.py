"""The effective-receptive-field analysis (the SegFormer paper's Figure 3, by RepLKNet's recipe): each model's
mean contribution maps per feature tap over N images, drawn as the paper's grid, with area ratios.

Suite section ``erf:`` (``ERFSpec``); store table ``erf``, one row per block of images (``store.py``); the
maps in ``maps.py``; running in ``run.py``; rendering in ``report.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..base import Analysis, ReportPart
from .store import SCHEMA, TABLES

if TYPE_CHECKING:
    from ...bench.store import Store
    from ...bench.suite import Suite
    from ..base import RunContext


@dataclass(frozen=True)
class ERFSpec:
    """The effective-receptive-field analysis over the first `images` images of the suite's dataset."""

    images: int = 100
    names: tuple[str, ...] = ()  # explicit image names (as the dataset names them) instead of the first `images`
    size: tuple[int, int] = (1024, 1024)  # input (H, W): each image resized to cover it, then centre-cropped
    models: tuple[str, ...] = ()  # default: all
    taps: tuple[str, ...] = ()  # default: each model's taps among maps.TAPS (stage1…stage4, fused, logits)
    block: int = 4  # images per batch and per stored block (the unit a resumed run restarts from)
    dataset_options: dict[str, Any] = field(default_factory=dict)


class ERFAnalysis(Analysis):
    name = "erf"
    title = "effective receptive fields"
    section = "erf"
    spec = ERFSpec
    example = "{images: 100}"
    schema = SCHEMA
    tables = TABLES

    def check(self, spec: ERFSpec, suite: Suite, where: str) -> None:
        from ...config import ConfigError
        from .maps import TAPS

        if spec.images < 1 or spec.block < 1 or min(spec.size) < 32:
            raise ConfigError(f"{where}: erf needs images ≥ 1, block ≥ 1 and a size of at least 32×32")
        if len(set(spec.names)) != len(spec.names):
            raise ConfigError(f"{where}: erf.names lists an image more than once")
        models = [m for m in suite.models if not spec.models or m.name in spec.models]
        own = all(m.family in (None, "segformer", "deeplabv3plus") for m in models)
        bad = [t for t in spec.taps if not (isinstance(t, str) and (t in TAPS or not own and t.isidentifier()))]
        if bad:  # other families' taps are checked when the model is opened
            raise ConfigError(f"{where}: erf.taps {bad}: choose from {', '.join(TAPS)}"
                              + ("" if own else " or the taps every model of the section offers"))
        if len(set(spec.taps)) != len(spec.taps):
            raise ConfigError(f"{where}: erf.taps {list(spec.taps)} names a tap more than once")

    def describe(self, spec: ERFSpec) -> str:
        return f"erf ({spec.images} images)"

    def run(self, ctx: RunContext, spec: ERFSpec) -> None:
        from .run import run_blocks

        run_blocks(ctx, spec)

    def report(self, store: Store, suite: Suite, metadata: Mapping[str, object]) -> ReportPart | None:
        from .report import erf_report
        from .store import blocks

        stored = blocks(store)
        if not stored:
            return None
        spec: ERFSpec = suite.section(self.name)
        order = list(spec.models) or [m.name for m in suite.models]
        ordered = sorted((k for k in stored if k[0] in order), key=lambda k: (order.index(k[0]), k[1]))
        files, sections = erf_report({k: stored[k] for k in ordered}, tuple(spec.size), models=order,
                                     images=len(spec.names) or spec.images)
        return ReportPart(files, sections)


ERF = ERFAnalysis()
