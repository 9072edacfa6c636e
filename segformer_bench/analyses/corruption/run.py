"""Running the corruption analysis: every (model, corruption, severity) cell and the clean set, one stored
row per cell, and the gallery (the first image under every cell and each model's prediction of it).

The images are corrupted on the fly (``fast``/``reference`` backend in the data-loading workers, ``torch``
on the model's device) or read from a tree made by ``segformer-bench corrupt``. Corruption seeds derive
from (suite seed, image name, corruption, severity), so every model sees the same corrupted images whatever
the order or sharding. Under torchrun the images of each cell are sharded over the ranks by ``evaluate``.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...calibration import DEFAULT_BINS
from ...corruptions import corrupt_batch, derive_seed
from ...corruptions.protocols import get_protocol
from ...corruptions.views import CorruptedTree, CorruptedView
from ...data.base import SegmentationDataset
from ...engine.evaluate import eval_settings, evaluate
from ...engine.inference import EvalSettings, segment_batch
from . import store as tables
from .robustness import CLEAN

if TYPE_CHECKING:
    from ...bench.store import Store
    from ..base import RunContext
    from . import CorruptionSpec


def run_cells(ctx: RunContext, spec: CorruptionSpec) -> None:
    """Every cell of every model of the section that is not stored yet (and the gallery, if the suite asks)."""
    suite, store = ctx.suite, ctx.store
    dataset = ctx.dataset()
    cells = [CLEAN] + (list(spec.cells) or get_protocol(spec.protocol).cells())
    models = ctx.models(spec.models)
    gallery = "gallery" in suite.reports
    bar = ctx.bar(len(models) * len(cells), "cells", "cell")
    try:
        for model_spec in models:
            todo = ctx.shared([c for c in cells if not (ctx.main and tables.has_cell(store, model_spec.name, *c))])
            bar.update(len(cells) - len(todo))
            # rank 0 decides for every rank: each must load (or train) the model if any of them needs it
            wants_gallery = ctx.shared(gallery and ctx.main and not tables.has_gallery(store, model_spec.name, *CLEAN))
            if not todo and not wants_gallery:
                continue
            model = ctx.model(model_spec, dataset)
            settings = eval_settings(suite.eval.preset, suite.eval.overrides, model_spec.eval,
                                     where=f"{suite.source}: model {model_spec.name!r}, eval")
            for corruption, severity in todo:
                view, transform = cell_data(dataset, spec, suite.seed, corruption, severity)
                result = evaluate(model, view, settings, ctx.device, limit=suite.dataset.limit,
                                  progress=ctx.progress, transform=transform, calibration_bins=DEFAULT_BINS,
                                  desc=f"{model_spec.name} {corruption} {severity}")
                if ctx.main:
                    tables.add_cell(store, model_spec.name, corruption, severity, result.metrics, result.per_image,
                                    result.names, suite.seed, result.seconds, result.calibration)
                bar.update(1)
            if gallery and ctx.main:
                _gallery(store, model_spec.name, model, dataset, spec, suite.seed, cells, settings, ctx.device)
    finally:
        bar.close()


def cell_data(dataset: SegmentationDataset, spec: CorruptionSpec, seed: int, corruption: str, severity: int):
    """(dataset, on-device transform or None) for one cell."""
    if (corruption, severity) == CLEAN:
        return dataset, None
    if spec.source == "tree":
        return CorruptedTree(spec.tree, corruption, severity), None
    if spec.backend == "torch":
        def transform(images: torch.Tensor, names: list[str]) -> torch.Tensor:
            seeds = [derive_seed(seed, n, corruption, severity) for n in names]
            return corrupt_batch(images, corruption, severity, seeds)

        return dataset, transform
    return CorruptedView(dataset, corruption, severity, seed, spec.backend), None


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _gallery(store: Store, model_name: str, model: torch.nn.Module, dataset: SegmentationDataset,
             spec: CorruptionSpec, seed: int, cells: list[tuple[str, int]], settings: EvalSettings,
             device: torch.device) -> None:
    """The first image under every cell and the model's prediction of it (class ids), stored as PNG bytes."""
    model.eval()
    for corruption, severity in cells:
        if tables.has_gallery(store, model_name, corruption, severity):
            continue
        view, transform = cell_data(dataset, spec, seed, corruption, severity)
        sample = view[0]
        images = torch.from_numpy(sample["image"]).permute(2, 0, 1)[None].to(device)
        if transform is not None:
            images = transform(images, [sample["name"]])
        with torch.inference_mode():
            pred = segment_batch(model, images, settings)[0].cpu().numpy().astype(np.uint8)
        image = images[0].permute(1, 2, 0).cpu().numpy()
        tables.add_gallery(store, model_name, corruption, severity, _png(image), _png(pred))
