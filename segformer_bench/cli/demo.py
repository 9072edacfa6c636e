"""The end-to-end demo: build (or load) a SegFormer, round-trip it through the HuggingFace format, and
segment a procedural street scene whole-image and with a sliding window.

It exercises every layer of the package on one machine in seconds, without any dataset: the model, the
checkpoint writer and reader, both inference modes, and the label colours. The scene is not data; with a
freshly initialised model the accuracy against its labels is at chance level, and the summary says so.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from .. import __version__
from ..data.labels import NUM_CITYSCAPES_CLASSES, colorize
from ..data.synthcity import SynthCity
from ..engine.distributed import resolve_device
from ..engine.inference import check_input_size, predict, window_grid
from ..errors import UserError
from ..image_io import check_output_dir, sha256_of, write_json, write_png
from ..models.checkpoints import export_huggingface, load_model
from ..models.profile import count_macs, count_parameters
from ..models.registry import build_model, variant_of


def street_scene(size: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An (H, W, 3) uint8 street view and its (H, W) Cityscapes trainId map, determined by `seed`.

    The first validation scene of SynthCity (:mod:`segformer_bench.data.synthcity`) with that seed: a
    procedural street in Cityscapes' 19 classes, rendered at `size`.
    """
    return SynthCity("val", size=size, seed=seed).load(0)


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def run_demo(out_dir: str | os.PathLike, variant: str = "b0", checkpoint: str | os.PathLike | None = None,
             device: str = "cpu", size: tuple[int, int] = (512, 1024), seed: int = 0,
             num_classes: int | None = None, log: Callable[[str], None] = lambda message: None) -> dict:
    """Run the demo, write its pictures and ``summary.json`` into `out_dir`, and return the summary.

    Without `checkpoint`, a freshly initialised `variant` for the 19 Cityscapes classes is built with
    ``torch.manual_seed(seed)``. `num_classes` is only needed for an encoder-only checkpoint.
    """
    out = check_output_dir(out_dir)
    dev = resolve_device(device)
    H, W = size
    crop = (H // 2, H // 2)
    stride = (max(1, crop[0] * 2 // 3), max(1, crop[1] * 2 // 3))

    timings: dict[str, float] = {}
    start = time.perf_counter()
    if checkpoint is None:
        torch.manual_seed(seed)
        model = build_model(variant, NUM_CITYSCAPES_CLASSES if num_classes is None else num_classes).eval()
    else:
        model = load_model(checkpoint, num_classes=num_classes)
    timings["build_or_load"] = time.perf_counter() - start
    classes = model.num_classes
    check_input_size(model, size)
    smallest = model.min_input_side
    if min(crop) < smallest:  # the window is the smaller input, and the demo chooses it, not the user
        raise UserError(f"demo size {H}×{W}: its sliding window ({crop[0]}×{crop[1]}, half the height) is below "
                        f"the {smallest}×{smallest} {model.display_name} needs; use a height of at least "
                        f"{2 * smallest}")
    model.to(dev)

    image, label = street_scene(size, seed)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].to(dev)  # 1, 3, H, W

    log("exporting to the HuggingFace format and reloading")
    start = time.perf_counter()
    export_huggingface(model, out / "hf")
    reloaded = load_model(out / "hf").to(dev)
    timings["export_reload"] = time.perf_counter() - start
    with torch.inference_mode():
        xn = model.preprocess(x)
        hf_diff = (model(xn) - reloaded(xn)).abs().max().item()
    del reloaded
    if not hf_diff <= 1e-4:  # same tensors, same code: anything above float noise is a bug
        raise RuntimeError(f"HuggingFace export round trip changed the logits by up to {hf_diff:g}")

    log("segmenting the scene whole-image and with a sliding window")
    whole, timings["predict_whole"] = _timed(lambda: predict(model, x, mode="whole")[0].cpu().numpy(), dev)
    slide, timings["predict_slide"] = _timed(
        lambda: predict(model, x, mode="slide", crop=crop, stride=stride)[0].cpu().numpy(), dev)
    macs, timings["count_macs"] = _timed(lambda: count_macs(model, size), dev)

    cityscapes = classes == NUM_CITYSCAPES_CLASSES
    accuracy = {m: float((p == label).mean()) for m, p in (("whole", whole), ("slide", slide))} if cityscapes else None
    largest_share = float(np.bincount(label.ravel(), minlength=classes).max() / label.size)
    if checkpoint is None:
        note = (f"freshly initialised (untrained) model: its predictions are noise and its pixel accuracy is chance "
                f"(about {1 / classes:.3f} for uniform guesses, at most {largest_share:.3f}, the largest class's "
                "share, for a constant prediction); pass a trained Cityscapes checkpoint for meaningful predictions")
    elif not cityscapes:
        note = f"the model has {classes} classes, not the 19 Cityscapes ones: accuracy against the scene is not defined"
    else:
        note = "the scene is procedural, not Cityscapes: read the accuracy as a sanity check, not a benchmark"

    files = {"input": "input.png", "label": "label.png", "pred_whole": "pred_whole.png",
             "pred_slide": "pred_slide.png", "pred_whole_trainids": "pred_whole_trainids.png",
             "hf_export": "hf", "summary": "summary.json"}
    write_png(out / files["input"], image)
    write_png(out / files["label"], colorize(label))
    write_png(out / files["pred_whole"], colorize(whole, classes))
    write_png(out / files["pred_slide"], colorize(slide, classes))
    write_png(out / files["pred_whole_trainids"], whole)

    summary = {
        "variant": variant_of(model.config) or "custom",
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "checkpoint_sha256": None if checkpoint is None else sha256_of(checkpoint),
        "trained": checkpoint is not None,
        "model_config": model.config.to_dict(),
        "params": count_parameters(model),
        "gmacs": macs / 1e9,
        "input_size": [H, W],
        "seed": seed,
        "device": str(dev),
        "slide": {"crop": list(crop), "stride": list(stride), "windows": len(window_grid(size, crop, stride))},
        "hf_roundtrip_max_abs_logit_diff": hf_diff,
        "agreement_whole_vs_slide": float((whole == slide).mean()),
        "pixel_accuracy": accuracy,
        "note": note,
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "files": files,
        "versions": {"segformer_bench": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    write_json(out / files["summary"], summary)
    return summary
