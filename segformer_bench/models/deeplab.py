"""DeepLabV3+ with a dilated ResNet-50/101: the CNN baseline of SegFormer's robustness comparison.

Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation",
ECCV 2018 (arXiv 1802.02611). The head follows mmsegmentation's ``DepthwiseSeparableASPPHead`` (the same in
the 0.x releases SegFormer was built on and in 1.x), whose released Cityscapes models this package loads,
rather than the paper's figure where they differ. (The SegFormer paper's DeepLabv3+ Cityscapes-C row, clean
77.1, matches none of mmseg's released models, 79.1–81.0 clean: it comes from Kamann & Rother's models.)

* ASPP and decoder are ``channels=512`` wide (the paper: 256); the atrous rates are 12, 24, 36 at output
  stride 8 (the paper's 6, 12, 18 at stride 16, doubled);
* the atrous ASPP branches and the two decoder convs are depthwise separable (depthwise 3×3 + BN + ReLU,
  then pointwise 1×1 + BN + ReLU); the 1×1 branch, the image-pooling branch and the low-level projection are
  plain 1×1 convs, and the conv fusing the concatenated ASPP branches is a *plain* 3×3 conv (the head inherits
  it from mmseg's ASPPHead unchanged; it alone holds 11.8M of the head's 17.7M parameters);
* the low-level feature is layer1 (stride 4, 256 channels) projected to 48 channels; it is concatenated
  *after* the upsampled ASPP output; two separable 3×3 convs, Dropout2d(0.1), a 1×1 classifier.

The backbone follows torchvision by default: a 7×7 conv + max-pool stem and every module named as in
torchvision's ``ResNet`` (``conv1``, ``bn1``, ``layer1``…``layer4``, blocks with
``conv1/bn1/conv2/bn2/conv3/bn3/downsample.0/.1``; bottleneck v1.5: the stride sits on the 3×3 conv), so
a torchvision ``resnet50-*.pth`` / ``resnet101-*.pth`` state dict without ``fc.*`` loads strictly into
``model.encoder`` (also reachable as ``model.backbone``). mmseg's ``ResNet`` (its ``r101b`` configs) is this
same network. ``stem="deep"`` gives mmseg's ``ResNetV1c`` instead (its ``r50``/``r101`` configs): three 3×3
convs (3→32 stride 2, 32→32, 32→64), each with BN + ReLU, then the same 3×3/2 max-pool, as ``stem.0``/``.1``
(conv, BN), ``stem.3``/``.4`` and ``stem.6``/``.7``; V1c keeps the strided 1×1 conv + BN shortcut
(``avg_down=False``), so the layers are unchanged.

Output stride 8 as in mmseg's ``-d8`` configs: layer3 and layer4 keep stride 1 and use dilation 2 and 4.
The first block of a dilated layer uses the *previous* layer's dilation (1 in layer3, 2 in layer4), as
torchvision's ``replace_stride_with_dilation=[False, True, True]`` does; mmseg's ``contract_dilation=True``
gives the same rates. With ``output_stride=16`` only layer4 is dilated (2, its first block 1).

``aux_head=True`` adds mmseg's auxiliary ``FCNHead`` on layer3 (one 3×3 conv 1024→256 + BN + ReLU,
Dropout2d, a 1×1 classifier; ``concat_input=False``), trained with loss weight 0.4 in mmseg's recipe. It never
enters ``forward``'s output, inference or the feature taps: only ``forward(x, aux=True)`` returns its logits
too, for training. SegFormer's table counts DeepLabV3+ R101 (ADE20K) at 62.7M parameters: this model's
60.27M (150 classes) plus that auxiliary head's 2.40M.

mmseg's released DeepLabV3+ checkpoints load into this model (``checkpoints/mmseg.py``: ``r101-d8`` with
the deep stem, ``r101b-d8`` with torchvision's). Inputs are normalised as for SegFormer (ImageNet mean/std on
the 0–255 scale, RGB), which is what torchvision's ImageNet weights and mmseg's configs expect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .base import EncoderDecoder, config_from_dict, positive_int, reject_unknown

ARCH = "deeplabv3plus"  # the "arch" field of a saved config; SegFormer configs have none
MIN_INPUT_SIDE = 32  # the project's floor for any model; the network itself runs on any size ≥ 1
BN_EPS = 1e-5  # torchvision's and mmcv's default

# Bottleneck blocks per layer (torchvision's resnet50 / resnet101).
RESNET_BLOCKS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
LAYER_PLANES = (64, 128, 256, 512)  # bottleneck widths; each layer outputs 4× as many channels
EXPANSION = 4
STEMS = ("torchvision", "deep")
AUX_CHANNELS = 256  # mmseg's FCNHead on layer3: channels=256
AUX_LAYER = 2  # its input: layer3 (in_index=2), 1024 channels
# Fields to_dict records only when they differ from their default: configs saved before they existed (in
# checkpoints, in the store of a run) compare equal to today's.
RECORDED_WHEN_SET = ("stem", "aux_head")


@dataclass(frozen=True)
class DeepLabConfig:
    """Architecture of one DeepLabV3+. Defaults are mmseg's ``deeplabv3plus_r50-d8``."""

    depth: int = 50  # ResNet-50 or ResNet-101
    num_classes: int = 19
    output_stride: int = 8  # 8: layer3/layer4 dilated 2/4 (mmseg "-d8"); 16: layer4 dilated 2
    aspp_rates: tuple[int, ...] = (12, 24, 36)  # atrous rates of the separable ASPP branches
    channels: int = 512  # width of ASPP and decoder (mmseg channels=512; the paper uses 256)
    c1_channels: int = 48  # the low-level (layer1) feature is projected to this many channels
    dropout: float = 0.1  # Dropout2d before the classifier (and the auxiliary head's)
    stem: Literal["torchvision", "deep"] = "torchvision"  # 7×7 conv, or mmseg ResNetV1c's three 3×3 convs
    aux_head: bool = False  # mmseg's auxiliary FCN head on layer3 (training only; never in the output)

    def __post_init__(self) -> None:
        if type(self.depth) is not int or self.depth not in RESNET_BLOCKS:
            depths = ", ".join(map(str, RESNET_BLOCKS))
            raise UserError(f"DeepLabConfig.depth must be one of {depths}, got {self.depth!r}")
        if type(self.output_stride) is not int or self.output_stride not in (8, 16):
            raise UserError(f"DeepLabConfig.output_stride must be 8 or 16, got {self.output_stride!r}")
        if not isinstance(self.aspp_rates, (tuple, list)) or not self.aspp_rates:
            raise UserError(f"DeepLabConfig.aspp_rates needs at least one rate ≥ 1, got {self.aspp_rates!r}")
        rates = tuple(positive_int(r, "DeepLabConfig.aspp_rates") for r in self.aspp_rates)
        object.__setattr__(self, "aspp_rates", rates)
        for name in ("num_classes", "channels", "c1_channels"):
            positive_int(getattr(self, name), f"DeepLabConfig.{name}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise UserError(f"DeepLabConfig.dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.stem not in STEMS:
            raise UserError(f"DeepLabConfig.stem must be one of {', '.join(STEMS)}, got {self.stem!r}")
        if not isinstance(self.aux_head, bool):
            raise UserError(f"DeepLabConfig.aux_head must be true or false, got {self.aux_head!r}")

    def to_dict(self) -> dict:
        """The fields, plus ``arch`` so that a checkpoint reader can tell this config from a SegFormer's; the
        fields of RECORDED_WHEN_SET only when they are not at their default."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in RECORDED_WHEN_SET or getattr(self, f.name) != f.default}
        return {"arch": ARCH, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DeepLabConfig:
        """The inverse of ``to_dict``; unknown fields are a UserError naming them."""
        return config_from_dict(cls, {k: v for k, v in data.items() if k != "arch"}, "DeepLabConfig field(s)")


DEEPLAB_VARIANTS: dict[str, DeepLabConfig] = {
    "deeplabv3plus-r50": DeepLabConfig(depth=50),
    "deeplabv3plus-r101": DeepLabConfig(depth=101),
}


def deeplab_variant_name(name: str) -> str | None:
    """Canonical DEEPLAB_VARIANTS key for 'deeplabv3plus-r50', 'DeepLabV3+_R101', 'deeplabv3plus_r50-d8'
    and the like; None when `name` is not one of them."""
    key = name.strip().lower().replace("_", "-").replace("deeplabv3+", "deeplabv3plus").removesuffix("-d8")
    return key if key in DEEPLAB_VARIANTS else None


def deeplab_variant_of(config: DeepLabConfig) -> str | None:
    """The variant with `config`'s architecture (classes aside), or None for a custom one."""
    for name, ref in DEEPLAB_VARIANTS.items():
        if dataclasses.replace(ref, num_classes=config.num_classes) == config:
            return name
    return None


# --------------------------------------------------------------------------------------------------
# Leaf layers


class ConvBNReLU(nn.Module):
    """Conv (no bias) + BatchNorm + ReLU: mmcv's ConvModule with norm and activation."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, dilation: int = 1, groups: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel_size // 2)  # keeps the spatial size
        self.conv = nn.Conv2d(in_chans, out_chans, kernel_size, padding=padding, dilation=dilation, groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_chans, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class SeparableConv(nn.Module):
    """Depthwise 3×3 (dilated) + BN + ReLU, then pointwise 1×1 + BN + ReLU (mmcv's DepthwiseSeparableConvModule)."""

    def __init__(self, in_chans: int, out_chans: int, dilation: int = 1) -> None:
        super().__init__()
        self.depthwise = ConvBNReLU(in_chans, in_chans, 3, dilation=dilation, groups=in_chans)
        self.pointwise = ConvBNReLU(in_chans, out_chans, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck v1.5: 1×1 → 3×3 (stride, dilation) → 1×1 (×4 channels), plus the
    shortcut, projected by a strided 1×1 conv + BN in a layer's first block."""

    def __init__(self, in_chans: int, planes: int, stride: int, dilation: int, project: bool) -> None:
        super().__init__()
        out_chans = planes * EXPANSION
        self.conv1 = nn.Conv2d(in_chans, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.conv3 = nn.Conv2d(planes, out_chans, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chans, eps=BN_EPS)
        self.downsample = None
        if project:
            self.downsample = nn.Sequential(nn.Conv2d(in_chans, out_chans, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_chans, eps=BN_EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + shortcut)


# --------------------------------------------------------------------------------------------------
# Encoder, head, segmentor


def layer_schedule(output_stride: int) -> list[tuple[int, int, int]]:
    """(stride, first block's dilation, other blocks' dilation) of layer1..layer4.

    A layer whose stride would take the total stride past `output_stride` keeps stride 1 and multiplies the
    dilation instead; its first block keeps the previous dilation (torchvision's replace_stride_with_dilation).
    Output stride 8 gives [(1, 1, 1), (2, 1, 1), (1, 1, 2), (1, 2, 4)].
    """
    schedule = []
    total, dilation = 4, 1  # the stem (its strided conv and the max-pool) has stride 4
    for i in range(4):
        stride = 1 if i == 0 else 2
        previous = dilation
        if total * stride > output_stride:
            dilation, stride = dilation * stride, 1
        total *= stride
        schedule.append((stride, previous, dilation))
    return schedule


def deep_stem() -> nn.Sequential:
    """mmseg ResNetV1c's stem (``ResNet._make_stem_layer`` with ``deep_stem=True``): three 3×3 convs, each
    followed by BN and ReLU; indices 0/1, 3/4, 6/7 hold the convs and BNs, as in its checkpoints."""
    layers: list[nn.Module] = []
    for in_chans, out_chans, stride in ((3, 32, 2), (32, 32, 1), (32, 64, 1)):
        layers += [nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1, bias=False),
                   nn.BatchNorm2d(out_chans, eps=BN_EPS), nn.ReLU()]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """A dilated ResNet-50/101 with torchvision's module names (or mmseg ResNetV1c's deep stem) and no
    classifier."""

    def __init__(self, depth: int, output_stride: int, stem: str = "torchvision") -> None:
        super().__init__()
        if stem == "deep":
            self.stem = deep_stem()
        else:  # built in this order, so that a seeded model draws the same initial weights as before
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64, eps=BN_EPS)
        self.stem_kind = stem
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_chans = 64
        for i, (n, planes, (stride, first, dilation)) in enumerate(
                zip(RESNET_BLOCKS[depth], LAYER_PLANES, layer_schedule(output_stride), strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(in_chans, planes, stride if j == 0 else 1, first if j == 0 else dilation,
                                         project=j == 0))
                in_chans = planes * EXPANSION
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.out_channels = tuple(p * EXPANSION for p in LAYER_PLANES)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """layer1..layer4 outputs; layer1 is (B, 256, ceil(H/4), ceil(W/4)) for any H, W (every stride-2
        conv and the max-pool map n pixels to ceil(n/2)), the later ones at the output stride."""
        x = self.stem(x) if self.stem_kind == "deep" else F.relu(self.bn1(self.conv1(x)))  # B, 64, H/2, W/2 (ceil)
        x = self.maxpool(x)  # B, 64, ceil(H/4), ceil(W/4)
        features = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features

    forward = forward_features


class SeparableASPPHead(nn.Module):
    """mmseg 0.13's DepthwiseSeparableASPPHead: ASPP on the last feature, fused with the projected layer1
    feature at stride 4. Logits come out at layer1's resolution, ceil(H/4) × ceil(W/4)."""

    def __init__(self, cfg: DeepLabConfig, in_chans: int, c1_in_chans: int) -> None:
        super().__init__()
        C = cfg.channels
        self.image_pool = ConvBNReLU(in_chans, C, 1)  # applied to the global average
        self.aspp = nn.ModuleList([ConvBNReLU(in_chans, C, 1)]
                                  + [SeparableConv(in_chans, C, dilation=r) for r in cfg.aspp_rates])
        self.bottleneck = ConvBNReLU((len(cfg.aspp_rates) + 2) * C, C, 3)  # plain, as mmseg's ASPPHead
        self.c1_proj = ConvBNReLU(c1_in_chans, cfg.c1_channels, 1)
        self.fuse = nn.Sequential(SeparableConv(C + cfg.c1_channels, C), SeparableConv(C, C))
        self.dropout = nn.Dropout2d(cfg.dropout)
        self.classifier = nn.Conv2d(C, cfg.num_classes, 1)

    def fused_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The decoder's last 3×3 (separable) conv output before the classifier: (B, C, h1, w1)."""
        c1, x = features[0], features[-1]
        B, _, h, w = x.shape
        # Bilinear resizing of a 1×1 map (mmseg's choice) copies its value everywhere: an expand is the same.
        pooled = self.image_pool(F.adaptive_avg_pool2d(x, 1)).expand(-1, -1, h, w)  # B, C, h, w
        x = self.bottleneck(torch.cat([pooled] + [branch(x) for branch in self.aspp], dim=1))  # B, C, h, w
        c1 = self.c1_proj(c1)  # B, c1_channels, h1, w1
        x = F.interpolate(x, size=c1.shape[2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, c1], dim=1))  # B, C, h1, w1

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.fused_features(features)))


class FCNAuxHead(nn.Module):
    """mmseg's ``FCNHead`` as DeepLabV3+'s auxiliary head (``num_convs=1, concat_input=False``): a 3×3 conv +
    BN + ReLU on layer3, Dropout2d, a 1×1 classifier. Logits at layer3's resolution (the output stride)."""

    def __init__(self, in_chans: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_chans, AUX_CHANNELS, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(AUX_CHANNELS, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.conv(features[AUX_LAYER])))


class DeepLabV3Plus(EncoderDecoder):
    """ResNet encoder + separable ASPP head. ``forward`` maps (B, 3, H, W) to logits (B, K, ceil(H/4), ceil(W/4)),
    like SegFormer, so inference, evaluation and training treat both alike.

    It implements the package's model protocol (``base.SegmentationModel``); its taps are ResNet layer1–4,
    ``fused`` the head's last separable 3×3 conv before the classifier, and ``logits``.
    """

    family = ARCH
    display_name = "DeepLabV3+"
    min_input_side = MIN_INPUT_SIDE
    # The BatchNorm after the image-pooling branch sees one value per channel and image: one image per
    # forward pass gives it a zero variance (torch refuses to train it).
    min_train_batch = 2

    def __init__(self, cfg: DeepLabConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = ResNet(cfg.depth, cfg.output_stride, cfg.stem)
        self.head = SeparableASPPHead(cfg, self.encoder.out_channels[-1], self.encoder.out_channels[0])
        self.aux_head = (FCNAuxHead(self.encoder.out_channels[AUX_LAYER], cfg.num_classes, cfg.dropout)
                         if cfg.aux_head else None)
        self.apply(_init_weights)
        # mmseg's DecodeHead initialises its classifier (conv_seg) with N(0, 0.01) and a zero bias.
        for head in (self.head, self.aux_head):
            if head is not None:
                nn.init.normal_(head.classifier.weight, 0.0, 0.01)
                nn.init.zeros_(head.classifier.bias)

    @property
    def backbone(self) -> ResNet:
        """The encoder, under the name torchvision users look for (not a second registration: one set of keys)."""
        return self.encoder

    def forward(self, x: torch.Tensor, aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits; with `aux` (training with the auxiliary head) the pair (logits, auxiliary logits at the
        output stride), from one pass through the encoder."""
        features = self.encoder.forward_features(x)
        logits = self.head(features)
        if not aux:
            return logits
        if self.aux_head is None:
            raise ValueError("forward(aux=True) needs a model built with aux_head=True")
        return logits, self.aux_head(features)


def _init_weights(m: nn.Module) -> None:
    """torchvision's ResNet and mmcv's ConvModule init: Kaiming-normal (fan_out, ReLU) convs, BN 1/0."""
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build_deeplab(variant: str, num_classes: int, **overrides: object) -> DeepLabV3Plus:
    """A freshly initialised DeepLabV3+ of `variant` (a DEEPLAB_VARIANTS key) for `num_classes` classes;
    `overrides` replace other DeepLabConfig fields, e.g. ``output_stride=16, aspp_rates=(6, 12, 18)``."""
    key = deeplab_variant_name(variant)
    if key is None:
        raise UserError(f"unknown DeepLabV3+ variant {variant!r}: choose one of {', '.join(DEEPLAB_VARIANTS)}")
    reject_unknown(overrides, DeepLabConfig, "model option(s)")
    return DeepLabV3Plus(dataclasses.replace(DEEPLAB_VARIANTS[key], num_classes=num_classes, **overrides))
