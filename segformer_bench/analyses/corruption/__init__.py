"""The corruption analysis (Cityscapes-C, ADE20K-C): every model under every corruption and severity of a
protocol, next to its clean mIoU; reported as the SegFormer paper's table, group means with bootstrap
intervals, mCD/mrCD against a reference model, per-class IoU, severity curves and a gallery.

Suite section ``corruptions:`` (``CorruptionSpec``); store tables ``cells`` and ``gallery`` (``store.py``);
running in ``run.py``; scores in ``robustness.py``; rendering in ``report.py``.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..base import Analysis, ReportPart
from .store import SCHEMA, TABLES

if TYPE_CHECKING:
    from ...bench.store import Store
    from ...bench.suite import Suite
    from ..base import RunContext


@dataclass(frozen=True)
class CorruptionSpec:
    protocol: str = "segformer"
    cells: tuple[tuple[str, int], ...] = ()  # explicit (corruption, severity) pairs instead of the protocol's
    source: Literal["on-the-fly", "tree"] = "on-the-fly"
    tree: str | None = None  # a directory written by `segformer-bench corrupt` (source: tree)
    backend: Literal["fast", "torch", "reference"] = "fast"
    models: tuple[str, ...] = ()  # the models to corrupt-test; default: all


class CorruptionAnalysis(Analysis):
    name = "corruption"
    title = "corruption robustness"
    section = "corruptions"
    spec = CorruptionSpec
    required = False  # every field has a default: the paper's protocol, on the fly, fast backend
    schema = SCHEMA
    tables = TABLES

    def check(self, spec: CorruptionSpec, suite: Suite, where: str) -> None:
        from ...config import ConfigError
        from ...corruptions import check_name, check_severity
        from ...corruptions.protocols import get_protocol
        from ...errors import UserError

        try:
            get_protocol(spec.protocol)
            for c, s in spec.cells:
                check_name(c)
                check_severity(s)
        except UserError as e:
            raise ConfigError(f"{where}: corruptions: {e}") from None
        if spec.source == "tree" and not spec.tree:
            raise ConfigError(f"{where}: corruptions.source is 'tree' but corruptions.tree names no directory")

    def resolve_paths(self, spec: CorruptionSpec, resolve: Callable[[str | None], str | None]) -> CorruptionSpec:
        return dataclasses.replace(spec, tree=resolve(spec.tree))

    def catalogue(self) -> list[tuple[str, list[tuple[str, str]]]]:
        from ...corruptions.protocols import PROTOCOLS

        return [("protocols", [(name, f"{len(p.corruptions)} corruptions, {len(p.cells())} cells")
                               for name, p in PROTOCOLS.items()])]

    def describe(self, spec: CorruptionSpec) -> str:
        return f"corruption (protocol {spec.protocol})"

    def run(self, ctx: RunContext, spec: CorruptionSpec) -> None:
        from .run import run_cells

        run_cells(ctx, spec)

    def report(self, store: Store, suite: Suite, metadata: Mapping[str, object]) -> ReportPart | None:
        from ...corruptions.protocols import get_protocol
        from ...data import class_names
        from . import store as tables
        from .report import corruption_report
        from .robustness import CLEAN

        results = tables.cell_matrices(store)
        if not results:
            return None
        spec: CorruptionSpec = suite.section(self.name)
        protocol = get_protocol(spec.protocol)
        if spec.cells:
            protocol = protocol.restricted(list(spec.cells))
        expected = [(m.name, *cell) for m in suite.models if not spec.models or m.name in spec.models
                    for cell in [CLEAN, *protocol.cells()]]  # what a finished run holds; a partial one lacks some
        stored = tables.gallery(store)
        files, sections = corruption_report(results, class_names(suite.dataset.name), protocol, metadata,
                                            reference_model=suite.reference_model,
                                            include_published=suite.include_published,
                                            gallery=_decode_gallery(stored) if stored else None, seed=suite.seed,
                                            expected=expected)
        from .calibration import calibration_part

        models = [m.name for m in suite.models if not spec.models or m.name in spec.models]
        more_files, more_sections = calibration_part(tables.cell_calibration(store), protocol, models,
                                                     seed=suite.seed)
        return ReportPart(files | more_files, sections + more_sections,
                          {"protocol": spec.protocol, "backend": spec.backend})


def _decode_gallery(rows: Mapping[tuple[str, str, int], tuple[bytes, bytes]]):  # -> report.Gallery
    """The stored gallery: the images as the first model with a gallery stored them, every model's predictions."""
    import numpy as np
    from PIL import Image

    from .report import Gallery

    def decode(blob: bytes) -> np.ndarray:
        return np.array(Image.open(io.BytesIO(blob)))

    first_model = next(iter(rows))[0]
    return Gallery(images={(c, s): decode(img) for (m, c, s), (img, _) in rows.items() if m == first_model},
                   predictions={key: decode(pred) for key, (_, pred) in rows.items()})


CORRUPTION = CorruptionAnalysis()
