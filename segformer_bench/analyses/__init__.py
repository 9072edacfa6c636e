"""The analyses a suite can run, as plug-ins: one folder each, registered in ``ANALYSES``.

``ANALYSES`` maps an analysis's name (as a suite's ``analyses`` lists it) to its plug-in, an
:class:`~segformer_bench.analyses.base.Analysis`: its suite section, its store tables, how it runs and resumes
its units, and how it renders its part of the report. The suite loader, the runner, ``report``, ``validate``,
``ls`` and the store loop over this table; adding an analysis is one folder and one entry here.
"""

from __future__ import annotations

from .adversarial import ADVERSARIAL
from .base import Analysis, ReportPart, RunContext
from .conditions import CONDITIONS
from .corruption import CORRUPTION
from .erf import ERF
from .resolution import RESOLUTION

ANALYSES: dict[str, Analysis] = {a.name: a for a in (CORRUPTION, RESOLUTION, ERF, ADVERSARIAL, CONDITIONS)}

__all__ = ["ANALYSES", "Analysis", "ReportPart", "RunContext"]
