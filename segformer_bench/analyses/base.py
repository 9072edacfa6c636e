"""What an analysis is: the ``Analysis`` base class every plug-in fills in, and the run context it gets.

An analysis owns, in its own folder:

* its **suite section**: a frozen dataclass (``spec``) read from the suite key ``section`` by the suite loader
  with the same type checks as every other field, plus ``check`` for what types cannot say (names that must
  exist, unique tests) and ``resolve_paths`` for paths in it;
* the **unit it stores** and its store tables (``schema``, ``tables``): one row per finished unit, written in
  one transaction, so a run resumes by skipping the units already stored;
* how it **runs** (``run``: every unit not yet stored, sharded over torchrun's ranks);
* how it **renders** its part of the report and of the HTML page (``report``), from the store alone.

It is registered by adding one entry to ``segformer_bench.analyses.ANALYSES``; the runner, ``report``,
``validate``, ``ls``, the store and the suite loader loop over that table and name no analysis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # for annotations only: the suite loader imports the registry, which imports the analyses
    import torch

    from ..bench.store import Store
    from ..bench.suite import ModelSpec, Suite
    from ..data.base import SegmentationDataset
    from ..models.segmenter import Segmenter
    from ..report.page import Section


@dataclass
class ReportPart:
    """An analysis's part of a run's report: files (name → text or bytes), page sections, and entries for the
    page's metadata header (e.g. the corruption protocol)."""

    files: dict[str, str | bytes]
    sections: list[Section]
    metadata: dict[str, object] = field(default_factory=dict)


class RunContext(Protocol):
    """What the runner hands an analysis: the suite, the store (on rank 0 only), the device and the ranks."""

    suite: Suite
    store: Store | None  # None on ranks other than 0, which compute but never write
    device: torch.device
    rank: int
    world: int
    progress: bool
    log: Callable[[str], None]

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that stores results."""

    def models(self, names: tuple[str, ...]) -> list[ModelSpec]:
        """The suite's models named in a section, in that order (all, in suite order, when it names none)."""

    def model(self, spec: ModelSpec, dataset: SegmentationDataset) -> Segmenter:
        """`spec`'s model (``models.open.open_model``) on the device, trained first if the suite says so, its
        classes checked against (or mapped onto) the dataset's, recorded in the store with its files' hash."""

    def shared(self, value: object) -> object:
        """Rank 0's `value` on every rank (so that every rank walks the same list of units)."""

    def gather(self, value: object) -> list[object]:
        """Every rank's `value`, in rank order (a list of one without torchrun)."""

    def bar(self, total: int, desc: str, unit: str) -> Any:
        """A progress bar (tqdm) shown on rank 0 when the run shows progress."""

    def dataset(self, **options: object) -> SegmentationDataset:
        """The suite's dataset, with `options` laid over its own (a larger SynthCity size, say)."""


class Analysis:
    """One kind of analysis. Subclasses set the class attributes and override ``run`` and ``report``."""

    name: str = ""  # as listed in a suite's `analyses`
    title: str = ""  # for the page's title, e.g. "corruption robustness"
    section: str = ""  # the suite key holding its settings
    spec: type = object  # the section's frozen dataclass
    required: bool = True  # a suite that lists the analysis must have its section (else `spec()` is used)
    example: str = "{...}"  # a minimal section, for the message when a required one is missing
    schema: str = ""  # CREATE TABLE IF NOT EXISTS statements of its store tables
    tables: tuple[str, ...] = ()  # their names (cleared by --restart)

    def default(self) -> object | None:
        """The section of a suite that has none: None when it is required, else the spec's defaults."""
        return None if self.required else self.spec()

    def check(self, spec: Any, suite: Suite, where: str) -> None:
        """Raise a ConfigError for what the types cannot say; `where` names the file. Called only when the
        suite lists the analysis. The section's `models`, if it has that field, are checked by the loader."""

    def resolve_paths(self, spec: Any, resolve: Callable[[str | None], str | None]) -> Any:
        """`spec` with its paths resolved against the suite file's directory (none by default)."""
        return spec

    def datasets(self, spec: Any, suite: Suite) -> list[tuple[str, str, str, str | None, dict[str, Any]]]:
        """The datasets the analysis opens besides the suite's own, for ``validate``: (field, name, split, root,
        options) each; none by default (options laid over the suite's are found by ``validate`` itself)."""
        return []

    def catalogue(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """What ``segformer-bench ls`` lists for this analysis: (heading, [(name, description)]) groups, e.g. the
        corruption protocols; none by default."""
        return []

    def describe(self, spec: Any) -> str:
        """A few words for ``validate``, e.g. 'corruption (protocol segformer)'."""
        return self.name

    def run(self, ctx: RunContext, spec: Any) -> None:
        """Compute and store every unit that is not stored yet."""
        raise NotImplementedError

    def report(self, store: Store, suite: Suite, metadata: Mapping[str, object]) -> ReportPart | None:
        """This analysis's part of the report from the store alone; None when it has stored nothing."""
        raise NotImplementedError
