"""mmsegmentation's released DeepLabV3+ checkpoints, read natively: no mmseg or mmcv install needed.

A file saved by mmcv is ``{'meta': {...}, 'state_dict': {...}}`` (``optimizer`` too before mmseg's
``publish_model`` strips it), read like every torch file here with ``weights_only=True``. Two layouts of the
Cityscapes DeepLabV3+ models exist (REFERENCE: their README gives 80.97 and 80.16 mIoU):

* ``deeplabv3plus_r101-d8_512x1024_80k_cityscapes``: backbone ``ResNetV1c``, a deep stem of three 3×3 convs
  (``backbone.stem.{0,1,3,4,6,7}``), built here with ``stem="deep"``;
* ``deeplabv3plus_r101b-d8_512x1024_80k_cityscapes``: backbone ``ResNet``, torchvision's 7×7 stem
  (``backbone.conv1``, ``backbone.bn1``): torchvision's module names under ``backbone.``.

Both have the same layers (mmseg's block norms are ``bn1..bn3``, the shortcut ``downsample.0/.1``, as
torchvision's), so the backbone needs only the prefix ``backbone.`` → ``encoder.``; the heads are renamed by
``RENAMES`` (mmcv's ``ConvModule`` holds ``conv`` and ``bn`` as ours does; a ``DepthwiseSeparableConvModule``
holds ``depthwise_conv`` and ``pointwise_conv``). R50 files load the same way.

What the tensors show is read from them: the depth (blocks per layer), the stem, the classes (``conv_seg``),
the head's width (``bottleneck``) and low-level width (``c1_bottleneck``), the number of atrous branches, and
whether the auxiliary FCN head is there. The atrous rates and the output stride are in no tensor: they are read
from the config text mmcv stores in the meta (``meta['config']``, mmengine's ``meta['cfg']``), parsed with
``ast`` as data and never executed; a file whose meta holds no readable config is taken to be a released
``-d8`` model (rates 12, 24, 36, output stride 8, contracted dilations), which every Cityscapes DeepLabV3+
of mmseg except the ``d16-mg124`` ones is. A config that asks for what this model cannot build (multi-grid
dilations, ``align_corners=True``, a head other than ``DepthwiseSeparableASPPHead``) is refused.

The auxiliary ``FCNHead`` on layer3 (``auxiliary_head.*``, training only) is read by default into a model with
``aux_head=True``: every tensor of the file lands somewhere, and training with the mmseg recipe can go on from
it. ``load_model(path, aux_head=False)`` drops it instead (the plain model). Loading is strict either way: a
tensor no rule renames, or one missing or mis-shaped, is one ``CheckpointError`` naming the file.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping

import torch

from ...errors import CheckpointError, UserError
from ..deeplab import ARCH, DeepLabConfig, layer_schedule
from .torchvision import resnet_depth_of

FORMAT = "mmseg-deeplabv3plus"

# (mmseg's key prefix, ours), tried in order, the first match wins; the rest of the key is kept.
RENAMES: list[tuple[str, str]] = [
    (r"backbone\.", "encoder."),
    (r"decode_head\.image_pool\.1\.", "head.image_pool."),  # image_pool.0 is the (parameter-free) average pool
    (r"decode_head\.aspp_modules\.0\.", "head.aspp.0."),  # the 1×1 branch (dilation 1): a plain ConvModule
    (r"decode_head\.aspp_modules\.(\d+)\.depthwise_conv\.", r"head.aspp.\1.depthwise."),
    (r"decode_head\.aspp_modules\.(\d+)\.pointwise_conv\.", r"head.aspp.\1.pointwise."),
    (r"decode_head\.bottleneck\.", "head.bottleneck."),
    (r"decode_head\.c1_bottleneck\.", "head.c1_proj."),
    (r"decode_head\.sep_bottleneck\.(\d+)\.depthwise_conv\.", r"head.fuse.\1.depthwise."),
    (r"decode_head\.sep_bottleneck\.(\d+)\.pointwise_conv\.", r"head.fuse.\1.pointwise."),
    (r"decode_head\.conv_seg\.", "head.classifier."),
    (r"auxiliary_head\.convs\.0\.", "aux_head.conv."),
    (r"auxiliary_head\.conv_seg\.", "aux_head.classifier."),
]
_RULES = [(re.compile(theirs), ours) for theirs, ours in RENAMES]

# The released -d8 configs: ASPP dilations (1, 12, 24, 36), backbone strides (1, 2, 1, 1), dilations (1, 1, 2, 4).
D8_RATES = (12, 24, 36)
MAX_CONFIG_CHARS = 1_000_000  # a config text is a few kilobytes; anything larger is not parsed


def is_mmseg(state: Mapping[str, object]) -> bool:
    """Whether a state dict is an mmseg segmentor on a ResNet (``backbone.layer1.0.conv1`` and a ``decode_head``);
    which head it has is checked when it is converted."""
    return "backbone.layer1.0.conv1.weight" in state and any(k.startswith("decode_head.") for k in state)


def rename(key: str) -> str | None:
    """One mmseg key in this package's names; None when no rule matches."""
    for pattern, ours in _RULES:
        m = pattern.match(key)
        if m is not None:
            return m.expand(ours) + key[m.end():]
    return None


def mmseg_to_ours(state: Mapping[str, torch.Tensor], meta: Mapping | None,
                  where: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict in our names, the DeepLabConfig's ``to_dict``) of an mmseg DeepLabV3+ checkpoint."""
    if not any(k.startswith("decode_head.sep_bottleneck.") for k in state):
        head = "an ASPPHead (DeepLabV3)" if any(k.startswith("decode_head.aspp_modules.") for k in state) else \
            "another decode head"
        raise CheckpointError(f"{where}: an mmsegmentation ResNet checkpoint with {head}, not DeepLabV3+'s "
                              "DepthwiseSeparableASPPHead (no decode_head.sep_bottleneck): only mmseg's DeepLabV3+ "
                              "loads natively")
    ours, unmatched = {}, []
    for key, tensor in state.items():
        new = rename(key)
        if new is None:
            unmatched.append(key)
        else:
            ours[new] = tensor
    if unmatched:
        shown = ", ".join(unmatched[:4]) + (f" and {len(unmatched) - 4} more" if len(unmatched) > 4 else "")
        raise CheckpointError(f"{where}: an mmseg DeepLabV3+ checkpoint with tensors no DeepLabV3+ here has: {shown}")
    return ours, _config(ours, _model_settings(meta, where), where)


def _config(state: Mapping[str, torch.Tensor], settings: dict, where: str) -> dict:
    """The DeepLabConfig (as ``to_dict``) that the renamed tensors and the file's own config describe."""
    def shape(key: str) -> torch.Size:
        if key not in state:
            raise CheckpointError(f"{where}: an mmseg DeepLabV3+ checkpoint without the tensor for {key}; download "
                                  "it again")
        return state[key].shape

    deep = any(k.startswith("encoder.stem.") for k in state)
    plain = any(k.startswith(("encoder.conv1.", "encoder.bn1.")) for k in state)
    if deep == plain:
        both = "both a deep stem (backbone.stem.*) and" if deep else "neither a deep stem (backbone.stem.*) nor"
        raise CheckpointError(f"{where}: an mmseg DeepLabV3+ checkpoint with {both} a 7×7 one (backbone.conv1)")
    depth = resnet_depth_of(state)
    if depth is None:
        blocks = [len({m[1] for k in state if (m := re.match(rf"encoder\.layer{i}\.(\d+)\.", k))}) for i in range(1, 5)]
        raise CheckpointError(f"{where}: an mmseg ResNet with {blocks} blocks per layer: only ResNet-50 (3, 4, 6, 3) "
                              "and ResNet-101 (3, 4, 23, 3) load")
    branches = len({m[1] for k in state if (m := re.match(r"head\.aspp\.(\d+)\.depthwise\.", k))})
    rates = settings.get("rates", D8_RATES)
    if len(rates) != branches:
        raise CheckpointError(f"{where}: the checkpoint has {branches} atrous ASPP branches but its config gives the "
                              f"rates {list(rates)}; fix or re-download the file")
    fields = {
        "arch": ARCH, "depth": depth, "num_classes": shape("head.classifier.weight")[0],
        "output_stride": settings.get("output_stride", 8), "aspp_rates": list(rates),
        "channels": shape("head.bottleneck.conv.weight")[0], "c1_channels": shape("head.c1_proj.conv.weight")[0],
        "dropout": settings.get("dropout", 0.1), "stem": "deep" if deep else "torchvision",
        "aux_head": any(k.startswith("aux_head.") for k in state),
    }
    try:
        config = DeepLabConfig.from_dict(fields)
    except UserError as e:
        raise CheckpointError(f"{where}: {e}") from None
    return config.to_dict()


# --------------------------------------------------------------------------------------------------
# The config text of the meta, read as data


def _literal(node: ast.AST) -> object:
    """A config value: a literal, or ``dict(k=v, ...)`` of such values; anything else is None (not needed)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.Dict):
        return {k.value: _literal(v) for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def model_dict(meta: Mapping | None) -> dict | None:
    """The ``model = dict(...)`` of the config text in an mmcv/mmengine meta, as plain data; None when there is
    no config text or it does not parse (mmcv's oldest files hold several files' texts run together)."""
    text = None if meta is None else meta.get("config", meta.get("cfg"))
    if not isinstance(text, str) or len(text) > MAX_CONFIG_CHARS:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "model"):
            found = _literal(node.value)
            return found if isinstance(found, dict) else None
    return None


def _model_settings(meta: Mapping | None, where: str) -> dict:
    """The fields of DeepLabConfig that the file's config gives (rates, output stride, dropout); empty when it
    has none. A config this model cannot follow is a CheckpointError naming `where`."""
    model = model_dict(meta)
    if model is None:
        return {}
    backbone, head = model.get("backbone") or {}, model.get("decode_head") or {}
    if not isinstance(backbone, dict) or not isinstance(head, dict):
        return {}
    settings: dict = {}
    kind = head.get("type")
    if kind is not None and kind != "DepthwiseSeparableASPPHead":
        raise CheckpointError(f"{where}: its config's decode head is {kind!r}, not DeepLabV3+'s "
                              "DepthwiseSeparableASPPHead")
    if head.get("align_corners") is True:
        raise CheckpointError(f"{where}: its config resizes with align_corners=True; this DeepLabV3+ resizes with "
                              "align_corners=False, as mmseg's released Cityscapes models do")
    dilations = head.get("dilations")
    if dilations is not None:
        if (not isinstance(dilations, (list, tuple)) or len(dilations) < 2 or dilations[0] != 1
                or not all(type(d) is int and d > 1 for d in dilations[1:])):
            raise CheckpointError(f"{where}: its config's ASPP dilations {dilations!r} are not (1, then the atrous "
                                  "rates)")
        settings["rates"] = tuple(dilations[1:])
    if isinstance(head.get("dropout_ratio"), (int, float)) and not isinstance(head["dropout_ratio"], bool):
        settings["dropout"] = float(head["dropout_ratio"])
    strides, rates = backbone.get("strides"), backbone.get("dilations")
    if strides is not None or rates is not None:
        ints = all(isinstance(v, (list, tuple)) and all(type(x) is int for x in v) for v in (strides, rates))
        stride = 4 * math.prod(strides) if ints else None
        expected = [d for _, _, d in layer_schedule(stride)] if stride in (8, 16) else None
        # mmseg's ResNet does not contract by default: a dilated layer's first block then has the full rate.
        if (expected is None or list(rates) != expected or backbone.get("multi_grid") is not None
                or (max(rates) > 1 and backbone.get("contract_dilation") is not True)):
            raise CheckpointError(
                f"{where}: its config's backbone (strides {strides}, dilations {rates}, multi_grid "
                f"{backbone.get('multi_grid')}, contract_dilation {backbone.get('contract_dilation', False)}) is not "
                "one this DeepLabV3+ builds: output stride 8 (dilations 1, 1, 2, 4) or 16 (1, 1, 1, 2), contracted, "
                "no multi-grid")
        settings["output_stride"] = stride
    return settings
