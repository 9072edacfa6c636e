"""Running the ERF analysis: each model's contribution maps over the first N images (or the named ones), in
blocks of ``erf.block`` images; each block is one stored row, the unit a resumed run restarts from. Under
torchrun the blocks of each round go to different ranks and rank 0 stores all of them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ...data.base import SegmentationDataset
from ...errors import UserError
from ...models.segmenter import Segmenter
from . import store as tables
from .maps import TAPS, ERFAccumulator, contribution_maps, cover_crop

if TYPE_CHECKING:
    from ..base import RunContext
    from . import ERFSpec


def model_taps(spec: ERFSpec, model: Segmenter, where: str) -> tuple[str, ...]:
    """The taps the ERF of `model` is taken at: the section's (each one the model must offer), else those of the
    model's taps that are among TAPS (this package's models: all of them)."""
    if spec.taps:
        missing = [t for t in spec.taps if t not in model.taps]
        if missing:
            raise UserError(f"{where}: erf.taps {', '.join(missing)}: model {model.name!r} offers "
                            f"{', '.join(model.taps)}; list only taps every model has, or give the model taps")
        return tuple(spec.taps)
    return tuple(t for t in TAPS if t in model.taps)


def erf_block(spec: ERFSpec, model: Segmenter, dataset: SegmentationDataset, indices: list[int],
              device: torch.device, taps: tuple[str, ...] = TAPS) -> dict:
    """One block's ERF totals at `taps`: {names, sums, counts, skipped, seconds}."""
    t0 = time.perf_counter()
    samples = [dataset[i] for i in indices]
    images = torch.stack([cover_crop(s["image"], spec.size) for s in samples]).to(device)
    acc = ERFAccumulator(taps)
    acc.add(contribution_maps(model, model.preprocess(images, scale=255), taps))
    return {"names": [s["name"] for s in samples], "sums": acc.sums, "counts": acc.count, "skipped": acc.skipped,
            "seconds": time.perf_counter() - t0}


def _silent(_: str) -> None:
    pass


def erf_images(dataset: SegmentationDataset, names: tuple[str, ...], count: int,
               log: Callable[[str], None]) -> list[int]:
    """Dataset indices of the ERF images: those named, in the listed order, or the first `count`."""
    if names:
        index = {dataset.name(i): i for i in range(len(dataset))}
        missing = [n for n in names if n not in index]
        if missing:
            example = dataset.name(0) if len(dataset) else "none"
            raise UserError(f"erf.names: {len(missing)} image(s) not in the dataset, e.g. {missing[0]!r} (names look "
                            f"like {example!r}); fix the list or the dataset's root and split")
        return [index[n] for n in names]
    if count > len(dataset):
        log(f"erf: the dataset has {len(dataset)} images, fewer than the {count} asked for; using all")
    return list(range(min(count, len(dataset))))


def run_blocks(ctx: RunContext, spec: ERFSpec) -> None:
    """Every block of every model of the section that is not stored yet."""
    store = ctx.store
    dataset = ctx.dataset(**spec.dataset_options)
    images = erf_images(dataset, spec.names, spec.images, ctx.log if ctx.main else _silent)
    n = len(images)
    blocks = [images[i: i + spec.block] for i in range(0, n, spec.block)]
    models = ctx.models(spec.models)
    bar = ctx.bar(len(models) * n, "erf", "img")
    try:
        for model_spec in models:
            todo = ctx.shared([b for b in range(len(blocks))
                               if not (ctx.main and tables.has_block(store, model_spec.name, b))])
            bar.update(n - sum(len(blocks[b]) for b in todo))
            if not todo:
                continue
            model = ctx.model(model_spec, dataset)
            taps = model_taps(spec, model, ctx.suite.source)
            for start in range(0, len(todo), ctx.world):
                mine = todo[start: start + ctx.world]
                part = (mine[ctx.rank], erf_block(spec, model, dataset, blocks[mine[ctx.rank]], ctx.device, taps)) \
                    if ctx.rank < len(mine) else None
                for b, block in (p for p in ctx.gather(part) if p is not None):
                    if ctx.main:
                        tables.add_block(store, model_spec.name, b, block["names"], block["sums"], block["counts"],
                                         block["skipped"], block["seconds"])
                    bar.update(len(blocks[b]))
    finally:
        bar.close()
