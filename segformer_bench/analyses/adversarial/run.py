"""Running the adversarial analysis: every (model, attack, ε) unit not yet stored. Each batch of images is
attacked through the model as the suite evaluates it (``engine.inference.eval_logits``), then scored by the
evaluation engine like any other images; under torchrun the images of each unit are sharded over the ranks by
``evaluate``. Each image is attacked alone, with its own seeded random start, so its adversarial image does not
depend on the batch, the order or the sharding it came in (batched float sums would differ in the last bits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ...attacks import attack, default_alpha, pixel_loss
from ...calibration import DEFAULT_BINS
from ...engine.evaluate import Adversary, eval_settings, evaluate
from ...engine.inference import AUTOCAST, EvalSettings, eval_logits
from ...models.segmenter import Segmenter
from . import store as tables

if TYPE_CHECKING:
    from ..base import RunContext
    from .spec import AdversarialSpec, AttackSpec


def image_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image mean cross-entropy over the non-ignored pixels (0 for an image with none)."""
    ce = pixel_loss(logits, labels)
    valid = (labels != 255).flatten(1).sum(1)
    return ce.flatten(1).sum(1) / valid.clamp(min=1)


def unit_settings(spec: AdversarialSpec, a: AttackSpec, eps: float) -> dict:
    """What the stored unit records of its attack (ε and α in 1/255 units, α resolved)."""
    alpha = a.alpha if a.alpha is not None else default_alpha(eps, a.steps)
    return {"method": a.method, "norm": a.norm, "eps": eps, "steps": a.steps, "alpha": alpha,
            "restarts": a.restarts, "random_start": a.random_start, "quantize": spec.quantize}


def adversary(model: Segmenter, spec: AdversarialSpec, a: AttackSpec, eps: float, settings: EvalSettings,
              seed: int) -> Adversary:
    """The evaluation's adversary for one unit: the attack (the worst of its restarts per image, by loss) and the
    per-image loss at the adversarial image."""
    autocast = AUTOCAST[settings.autocast]
    alpha = None if a.alpha is None else a.alpha / 255

    def forward(x: torch.Tensor) -> torch.Tensor:
        return eval_logits(model, x, settings, scale=1.0)

    def one(x0: torch.Tensor, label: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        best, best_loss = None, None
        for r in range(a.restarts):
            adv = attack(forward, x0, label, method=a.method, norm=a.norm, eps=eps / 255, alpha=alpha,
                         steps=a.steps, random_start=a.random_start, seed=seed,
                         ids=[name if r == 0 else f"{name}\x1frestart {r}"], quantize=spec.quantize,
                         autocast=autocast)
            with torch.no_grad():
                loss = image_losses(forward(adv), label)
            if best is None or bool(loss > best_loss):
                best, best_loss = adv, loss
        return best, best_loss

    def run(images: torch.Tensor, labels: torch.Tensor, names: list[str]) -> tuple[torch.Tensor, np.ndarray]:
        # each image alone: its adversarial image cannot depend on the batch it came in (float sums would)
        done = [one(images[i:i + 1].float() / 255, labels[i:i + 1], name) for i, name in enumerate(names)]
        adv = torch.cat([x for x, _ in done])
        return adv * 255, torch.cat([loss for _, loss in done]).double().cpu().numpy()

    return run


def run_units(ctx: RunContext, spec: AdversarialSpec) -> None:
    """Every (model, attack, ε) of the section that is not stored yet."""
    suite, store = ctx.suite, ctx.store
    dataset = ctx.dataset(**spec.dataset_options)
    units = [(a, eps) for a in spec.attacks for eps in a.eps]
    models = ctx.models(spec.models)
    bar = ctx.bar(len(models) * len(units), "attacks", "unit")
    try:
        for model_spec in models:
            todo = ctx.shared([i for i, (a, eps) in enumerate(units)
                               if not (ctx.main and tables.has_unit(store, model_spec.name, a.label, eps))])
            bar.update(len(units) - len(todo))
            # rank 0 decides for every rank: each must open the model if any of them needs it
            wants_gallery = ctx.shared("gallery" in suite.reports and ctx.main
                                       and not tables.has_gallery(store, model_spec.name))
            if not todo and not wants_gallery:
                continue
            model = ctx.model(model_spec, dataset)
            settings = eval_settings(suite.eval.preset, suite.eval.overrides, model_spec.eval,
                                     where=f"{suite.source}: model {model_spec.name!r}, eval")
            if wants_gallery and ctx.main:
                _gallery(store, model_spec.name, model, spec, dataset, settings, suite.seed, ctx.device)
            clean = None  # ε = 0 is the same clean evaluation for every attack: computed once per model
            for i in todo:
                a, eps = units[i]
                result = clean if eps == 0 and clean is not None else evaluate(
                    model, dataset, settings, ctx.device, limit=suite.dataset.limit, progress=ctx.progress,
                    adversary=adversary(model, spec, a, eps, settings, suite.seed), calibration_bins=DEFAULT_BINS,
                    desc=f"{model_spec.name} {a.label} {eps:g}/255")
                clean = result if eps == 0 else clean
                if ctx.main:
                    tables.add_unit(store, model_spec.name, a.label, eps, result.metrics, result.per_image,
                                    result.per_image_loss, result.names, unit_settings(spec, a, eps), suite.seed,
                                    result.seconds, result.calibration)
                bar.update(1)
    finally:
        bar.close()


def headline(spec: AdversarialSpec) -> float:
    """The headline ε (1/255 units): the section's, else the largest of any attack."""
    return spec.headline_eps if spec.headline_eps is not None else max(e for a in spec.attacks for e in a.eps)


def _gallery(store, model_name: str, model: Segmenter, spec: AdversarialSpec, dataset, settings: EvalSettings,
             seed: int, device: torch.device) -> None:
    """The first image under the first attack that has the headline ε (the same adversarial image as in its unit),
    and the model's predictions of the clean and the adversarial image."""
    from ...engine.inference import segment_batch

    eps = headline(spec)
    a = next(x for x in spec.attacks if eps in x.eps)
    sample = dataset[0]
    images = torch.from_numpy(sample["image"]).permute(2, 0, 1)[None].to(device)
    labels = torch.from_numpy(sample["label"]).long()[None].to(device)
    model.eval()
    adv, _ = adversary(model, spec, a, eps, settings, seed)(images, labels, [sample["name"]])
    with torch.inference_mode():
        clean_pred = segment_batch(model, images, settings)[0].cpu().numpy()
        adv_pred = segment_batch(model, adv, settings)[0].cpu().numpy()
    tables.add_gallery(store, model_name, a.label, eps, sample["image"], adv[0].permute(1, 2, 0).cpu().numpy(),
                       clean_pred.astype(np.int16), adv_pred.astype(np.int16))
