"""The ``mmseg`` family: a model of mmsegmentation 1.x through its own Python API (``mmseg.apis.init_model``).

Optional: mmsegmentation is not a dependency of this package and is not installed in its CI (mmseg 1.2.2
needs mmcv < 2.2.0, which compiles from source on current torch; REFERENCE §9). Where it is importable::

    - {name: DeepLabV3+ R101 (mmseg), family: mmseg, config: configs/deeplabv3plus_r101-d8.py,
       checkpoint: ../checkpoints/deeplabv3plus_r101-d8_512x1024_80k_cityscapes.pth}

The model's ``data_preprocessor`` gives the preprocessing (mean/std on the 0–255 scale; ``bgr_to_rgb``: the
network wants RGB when set, else BGR — mmseg reads images as BGR; ``size_divisor``: sides resized up to it,
where mmseg pads), ``encode_decode`` the logits, the backbone's outputs the taps ``stage1``…``stageN`` and the
decode head's ``conv_seg`` input the tap ``fused``. The class names are the checkpoint's ``meta.dataset_meta``
classes when it has them. For DeepLabV3+ Cityscapes checkpoints no mmseg is needed: the ``deeplabv3plus``
family reads them natively.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...config import ConfigError, from_mapping
from ..entry import ModelEntry
from ..segmenter import Preprocess, Segmenter
from .hooks import check_taps, run_tapped


class MMSegSegmenter(Segmenter):
    def __init__(self, module: nn.Module, entry: ModelEntry, preprocess: Preprocess, num_classes: int,
                 class_names: Sequence[str] | None, stages: int) -> None:
        taps = (*(f"stage{i + 1}" for i in range(stages)), "fused", *entry.taps)
        super().__init__(module, name=entry.name, family="mmseg", display_name=entry.name or "mmseg model",
                         num_classes=num_classes, preprocess=preprocess, taps=taps, class_names=class_names,
                         min_input_side=max(32, preprocess.size_divisor),
                         description={"config": entry.config, "type": type(module).__name__})
        self.tap_modules = {"fused": "decode_head.conv_seg:input", **entry.taps}
        self.stages = stages

    def _metas(self, x: torch.Tensor) -> list[dict]:
        h, w = x.shape[-2:]
        return [{"img_shape": (h, w), "ori_shape": (h, w), "pad_shape": (h, w)} for _ in range(x.shape[0])]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.encode_decode(x, self._metas(x))

    def tap_features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        stages: dict[str, torch.Tensor] = {}

        def record(_m, _args, out):
            for i, feature in enumerate(out):
                stages[f"stage{i + 1}"] = feature

        handle = self.module.backbone.register_forward_hook(record)
        try:
            captured, logits = run_tapped(self.module, self.tap_modules, names, lambda: self.network(x))
        finally:
            handle.remove()
        return {**stages, **captured, "logits": logits}


def _preprocess(module: nn.Module, overrides: dict, where: str) -> Preprocess:
    cfg = getattr(module, "cfg", None)
    pre = (cfg.get("model", {}).get("data_preprocessor") if cfg is not None else None) or {}
    if not pre and cfg is not None:
        pre = cfg.get("data_preprocessor") or {}
    fields = {"mean": tuple(pre.get("mean", (123.675, 116.28, 103.53))),
              "std": tuple(pre.get("std", (58.395, 57.12, 57.375))), "scale": 255,
              "channels": "RGB" if pre.get("bgr_to_rgb", True) else "BGR",
              "size_divisor": int(pre.get("size_divisor") or 1)}
    return from_mapping(Preprocess, {**fields, **overrides}, where)


def open_mmseg(entry: ModelEntry, num_classes: int | None, where: str) -> Segmenter:
    label = f"{where} ({entry.name})" if entry.name else where
    try:
        from mmseg.apis import init_model
    except ImportError:
        raise ConfigError(f"{label}: family 'mmseg' needs mmsegmentation 1.x and mmcv installed (not a dependency "
                          "of segformer-bench); install them, or use the deeplabv3plus family for mmseg's "
                          "DeepLabV3+ checkpoints, or the python family") from None
    try:
        module = init_model(entry.config, entry.checkpoint, device="cpu")
    except Exception as e:
        raise ConfigError(f"{label}: mmseg could not build {entry.config} with {entry.checkpoint}: "
                          f"{type(e).__name__}: {e}") from None
    check_taps(module, entry.taps, label)
    meta = getattr(module, "dataset_meta", None) or {}
    classes = meta.get("classes")
    K = int(module.decode_head.num_classes)
    with torch.no_grad():
        stages = len(module.backbone(torch.zeros(1, 3, 64, 64)))
    return MMSegSegmenter(module.eval(), entry, _preprocess(module, dict(entry.preprocess), f"{label}.preprocess"), K,
                          tuple(classes) if classes and len(classes) == K else None, stages)
