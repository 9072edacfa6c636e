"""Running the resolution-shift analysis: every (model, test resolution) pair, one stored row each. Each test
has its own dataset options (SynthCity renders the same scenes larger) and evaluation settings; under
torchrun the images of each test are sharded over the ranks by ``evaluate``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...calibration import DEFAULT_BINS
from ...data.base import SegmentationDataset
from ...engine.evaluate import eval_settings, evaluate
from ...engine.inference import EvalSettings, inference_size
from . import store as tables

if TYPE_CHECKING:
    from ..base import RunContext
    from . import ResolutionSpec


def network_input_size(dataset: SegmentationDataset, settings: EvalSettings) -> tuple[int, int]:
    """The network's input (H, W) for the dataset's first image: the window in slide mode, else the image as
    resized for inference."""
    h, w = dataset[0]["image"].shape[:2]
    size = inference_size((h, w), settings, 1.0)
    if settings.mode == "slide":
        return min(settings.crop[0], size[0]), min(settings.crop[1], size[1])
    return size


def run_tests(ctx: RunContext, spec: ResolutionSpec) -> None:
    """Every (model, test) pair of the section that is not stored yet."""
    suite, store = ctx.suite, ctx.store
    models = ctx.models(spec.models)
    bar = ctx.bar(len(models) * len(spec.tests), "resolution tests", "test")
    try:
        for model_spec in models:
            todo = ctx.shared([t.name for t in spec.tests
                               if not (ctx.main and tables.has_result(store, model_spec.name, t.name))])
            bar.update(len(spec.tests) - len(todo))
            for test in (t for t in spec.tests if t.name in todo):
                dataset = ctx.dataset(**test.dataset_options)
                model = ctx.model(model_spec, dataset)
                settings = eval_settings(test.eval.preset, model_spec.eval, test.eval.overrides,
                                         where=f"{suite.source}: resolution test {test.name!r}, eval")
                result = evaluate(model, dataset, settings, ctx.device, limit=suite.dataset.limit,
                                  progress=ctx.progress, calibration_bins=DEFAULT_BINS,
                                  desc=f"{model_spec.name} {test.name}")
                if ctx.main:
                    tables.add_result(store, model_spec.name, test.name, result.metrics, result.per_image,
                                      result.names, network_input_size(dataset, settings), suite.seed,
                                      result.seconds, result.calibration)
                bar.update(1)
    finally:
        bar.close()
