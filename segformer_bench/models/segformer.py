"""SegFormer: the Mix Transformer (MiT-B0…B5) encoder and the All-MLP decoder.

Xie et al., "SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers",
NeurIPS 2021 (arXiv 2105.15203). This file follows the released code (NVlabs/SegFormer, mmseg 0.13)
wherever it differs from the paper, because the released checkpoints were trained with the code:

* the MLP ratio is 4 in every stage (the paper's table says 8, 8, 4, 4);
* LayerNorm eps is 1e-6 in the blocks and the stage-final norms, but PyTorch's default 1e-5 in the
  patch-embedding norm and the spatial-reduction norm;
* the key/value projection is one Linear(C, 2C) whose first C output rows are K and last C are V;
* the decoder concatenates the projected stage features in the order c4, c3, c2, c1.

Module names are this project's own; the released checkpoints' names are handled as data by the
key-renaming rules in ``checkpoints/layouts.py``.

Two fields exist for the resolution-shift ablation (paper, Table 6): ``ffn="plain"`` removes the
depthwise 3×3 convolution from the Mix-FFN, and ``pos_embed="learned"`` adds a PVT-style learnable
positional embedding per stage, sized for ``pos_embed_size`` and resized bicubically to the actual
token grid. The defaults (``"mix"``, ``"none"``) are the released SegFormer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .base import EncoderDecoder, config_from_dict, positive_int, reject_unknown

# LayerNorm eps of the released code: blocks and stage norms were built with partial(LayerNorm,
# eps=1e-6); the patch-embedding and spatial-reduction norms are plain nn.LayerNorm (1e-5).
BLOCK_LN_EPS = 1e-6
EMBED_LN_EPS = 1e-5
BN_EPS = 1e-5


@dataclass(frozen=True)
class SegFormerConfig:
    """Architecture of one SegFormer. Every field has the released default except the variant's own."""

    embed_dims: tuple[int, int, int, int] = (32, 64, 160, 256)
    depths: tuple[int, int, int, int] = (2, 2, 2, 2)
    decoder_dim: int = 256  # E in the paper: 256 for B0/B1, 768 for B2–B5
    num_classes: int = 19
    num_heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)  # spatial reduction of keys/values per stage
    mlp_ratio: int = 4  # 4 in every stage in the checkpoints, whatever the paper's table says
    patch_sizes: tuple[int, int, int, int] = (7, 3, 3, 3)
    strides: tuple[int, int, int, int] = (4, 2, 2, 2)
    in_chans: int = 3
    drop_path_rate: float = 0.1  # stochastic depth, rising linearly over all blocks
    head_dropout: float = 0.1  # Dropout2d before the classifier
    ffn: Literal["mix", "plain"] = "mix"  # "plain": no depthwise conv (resolution ablation)
    pos_embed: Literal["none", "learned"] = "none"  # "learned": per-stage absolute embedding
    pos_embed_size: tuple[int, int] = (512, 512)  # input size (H, W) the learned embedding is sized for

    def __post_init__(self) -> None:
        # Every size is a positive integer: a zero head count or stride would otherwise surface later as a
        # ZeroDivisionError or an empty tensor deep inside the model (a config.json can say anything).
        for name, count in (("embed_dims", 4), ("depths", 4), ("num_heads", 4), ("sr_ratios", 4),
                            ("patch_sizes", 4), ("strides", 4), ("pos_embed_size", 2)):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != count:
                per = " (one per stage)" if count == 4 else ""
                raise UserError(f"SegFormerConfig.{name} needs {count} values{per}, got {value!r}")
            object.__setattr__(self, name, tuple(positive_int(v, f"SegFormerConfig.{name}") for v in value))
        for name in ("decoder_dim", "num_classes", "mlp_ratio", "in_chans"):
            positive_int(getattr(self, name), f"SegFormerConfig.{name}")
        for dim, heads in zip(self.embed_dims, self.num_heads, strict=True):
            if dim % heads:
                raise UserError(f"SegFormerConfig: embed dim {dim} is not divisible by {heads} heads")
        for name in ("drop_path_rate", "head_dropout"):
            rate = getattr(self, name)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
                raise UserError(f"SegFormerConfig.{name} must be a number in [0, 1), got {rate!r}")
        if self.ffn not in ("mix", "plain"):
            raise UserError(f"SegFormerConfig.ffn must be 'mix' or 'plain', got {self.ffn!r}")
        if self.pos_embed not in ("none", "learned"):
            raise UserError(f"SegFormerConfig.pos_embed must be 'none' or 'learned', got {self.pos_embed!r}")

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SegFormerConfig:
        """The inverse of ``to_dict``; unknown fields are a UserError naming them."""
        return config_from_dict(cls, data, "SegFormerConfig field(s)")


_C1 = (64, 128, 320, 512)
VARIANTS: dict[str, SegFormerConfig] = {
    "b0": SegFormerConfig(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2), decoder_dim=256),
    "b1": SegFormerConfig(embed_dims=_C1, depths=(2, 2, 2, 2), decoder_dim=256),
    "b2": SegFormerConfig(embed_dims=_C1, depths=(3, 4, 6, 3), decoder_dim=768),
    "b3": SegFormerConfig(embed_dims=_C1, depths=(3, 4, 18, 3), decoder_dim=768),
    "b4": SegFormerConfig(embed_dims=_C1, depths=(3, 8, 27, 3), decoder_dim=768),
    "b5": SegFormerConfig(embed_dims=_C1, depths=(3, 6, 40, 3), decoder_dim=768),
}


def segformer_variant_name(name: str) -> str | None:
    """Canonical VARIANTS key for 'b0', 'B0', 'mit-b0', 'mit_b0', 'segformer-b0' and the like; None when `name`
    is not one of them."""
    key = name.strip().lower().replace("_", "-")
    for prefix in ("segformer-", "segformer.", "mit-"):
        key = key.removeprefix(prefix)
    return key if key in VARIANTS else None


def segformer_variant_of(config: SegFormerConfig) -> str | None:
    """The variant whose encoder and decoder widths `config` has, or None for a custom architecture."""
    for name, ref in VARIANTS.items():
        if (ref.embed_dims, ref.depths, ref.decoder_dim) == (config.embed_dims, config.depths, config.decoder_dim):
            return name
    return None


def min_input_side(config: SegFormerConfig) -> int:
    """The smallest image side `config` accepts: every stage's token grid must be at least as large as its
    spatial-reduction kernel (sr_ratio), or the strided reduction conv has nothing to slide over."""
    side = 1
    while True:
        grid = side
        fits = True
        for k, s, r in zip(config.patch_sizes, config.strides, config.sr_ratios, strict=True):
            grid = (grid + 2 * (k // 2) - k) // s + 1  # the patch embedding conv's output size
            fits = fits and grid >= r
        if fits:
            return side
        side += 1


# --------------------------------------------------------------------------------------------------
# Leaf layers


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample, rescaling survivors."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class OverlapPatchEmbed(nn.Module):
    """Strided conv with padding k//2 (patches overlap), then LayerNorm over channels."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(dim, eps=EMBED_LN_EPS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)  # B, C, h, w with h = ceil(H / stride) for these paddings
        _, _, h, w = x.shape
        x = self.norm(x.flatten(2).transpose(1, 2))  # B, h*w, C
        return x, h, w


class EfficientAttention(nn.Module):
    """Multi-head self-attention whose keys/values come from a sequence shrunk R×R by a strided conv."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)  # rows [:dim] are K, rows [dim:] are V, each head-major
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.sr_norm = nn.LayerNorm(dim, eps=EMBED_LN_EPS)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        B, N, C = x.shape
        d = C // self.num_heads
        q = self.q(x).view(B, N, self.num_heads, d).transpose(1, 2)  # B, heads, N, d
        if self.sr_ratio > 1:
            r = self.sr(x.transpose(1, 2).reshape(B, C, h, w))  # B, C, h/R, w/R (floor)
            x = self.sr_norm(r.flatten(2).transpose(1, 2))  # B, M, C
        kv = self.kv(x).view(B, -1, 2, self.num_heads, d).permute(2, 0, 3, 1, 4)  # 2, B, heads, M, d
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])  # scale d**-0.5, no dropout (rate 0)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class MixFFN(nn.Module):
    """fc1 → depthwise 3×3 conv → GELU → fc2. With ``mix=False`` the conv is left out (plain FFN)."""

    def __init__(self, dim: int, hidden: int, mix: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden) if mix else None
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.fc1(x)
        if self.dwconv is not None:
            B, N, C = x.shape
            if torch.compiler.is_compiling() and x.dtype == torch.float32 and x.device.type == "cpu":
                x = depthwise_3x3_tokens(x, self.dwconv.weight, self.dwconv.bias, h, w)  # measured where it pays
            else:
                x = self.dwconv(x.transpose(1, 2).view(B, C, h, w)).flatten(2).transpose(1, 2)  # B, N, C
        return self.fc2(F.gelu(x))


def depthwise_3x3_tokens(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The depthwise 3×3 conv (padding 1) of tokens (B, h*w, C) on their h×w grid, as nine shifted multiply-adds
    in the tokens' own channels-last order. The same function as the Conv2d, summed in another order (fp32:
    ~1e-7 apart); what ``torch.compile`` runs: inductor fuses the nine terms, the padding and the GELU after
    them into one pass over memory, where the compiled conv costs a layout conversion each way around oneDNN's
    depthwise kernel, 3.5–5.5× the time at Mix-FFN's shapes in fp32 (``benchmarks/depthwise_speed.py``,
    RESULTS.md). Under bf16 autocast the compiled model keeps the conv: oneDNN's bf16 kernel made B0 and B2 at
    512² faster than this form (it won only at 1024², less than it lost there). On CUDA the compiled model keeps
    the conv until the form is measured there (``depthwise_speed.py --device cuda``, part of no GPU run yet)."""
    B, N, C = x.shape
    padded = F.pad(x.view(B, h, w, C), (0, 0, 1, 1, 1, 1))  # B, h+2, w+2, C
    taps = weight.view(C, 3, 3).to(x.dtype)  # under autocast x is bf16/fp16, as the conv would compute
    out = bias.to(x.dtype)
    for i in range(3):
        for j in range(3):
            out = out + padded[:, i:i + h, j:j + w, :] * taps[:, i, j]
    return out.view(B, N, C)


class Block(nn.Module):
    """Pre-norm transformer block: x + DropPath(Attn(LN(x))), then x + DropPath(FFN(LN(x)))."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, mlp_ratio: int, drop_path: float,
                 mix_ffn: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_LN_EPS)
        self.attn = EfficientAttention(dim, num_heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_LN_EPS)
        self.mlp = MixFFN(dim, dim * mlp_ratio, mix=mix_ffn)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.mlp(self.norm2(x), h, w))


class Stage(nn.Module):
    """Patch embedding (+ optional learned position embedding), blocks, and the stage's own LayerNorm."""

    def __init__(self, cfg: SegFormerConfig, i: int, in_chans: int, drop_paths: list[float]) -> None:
        super().__init__()
        dim = cfg.embed_dims[i]
        self.patch_embed = OverlapPatchEmbed(in_chans, dim, cfg.patch_sizes[i], cfg.strides[i])
        self.pos_embed: nn.Parameter | None = None
        if cfg.pos_embed == "learned":
            stride = math.prod(cfg.strides[: i + 1])
            self.pos_grid = tuple(math.ceil(s / stride) for s in cfg.pos_embed_size)
            self.pos_embed = nn.Parameter(torch.zeros(1, self.pos_grid[0] * self.pos_grid[1], dim))
        self.blocks = nn.ModuleList(
            Block(dim, cfg.num_heads[i], cfg.sr_ratios[i], cfg.mlp_ratio, p, mix_ffn=cfg.ffn == "mix")
            for p in drop_paths
        )
        self.norm = nn.LayerNorm(dim, eps=BLOCK_LN_EPS)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """The learned embedding resized to an h×w token grid (bicubic, align_corners=False, as ViT/SETR)."""
        assert self.pos_embed is not None
        if (h, w) == self.pos_grid:
            return self.pos_embed
        C = self.pos_embed.shape[-1]
        grid = self.pos_embed.transpose(1, 2).reshape(1, C, *self.pos_grid)  # 1, C, gh, gw
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return grid.flatten(2).transpose(1, 2)  # 1, h*w, C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, h, w = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.position_embedding(h, w)
        for block in self.blocks:
            x = block(x, h, w)
        x = self.norm(x)
        return x.transpose(1, 2).reshape(x.shape[0], -1, h, w)  # B, C, h, w


# --------------------------------------------------------------------------------------------------
# Encoder, decoder, segmentor


class MixVisionTransformer(nn.Module):
    """The MiT encoder: four stages at strides 4, 8, 16, 32."""

    def __init__(self, cfg: SegFormerConfig) -> None:
        super().__init__()
        n = sum(cfg.depths)  # drop-path rate rises linearly from 0 to drop_path_rate over all blocks
        rates = [cfg.drop_path_rate * k / max(n - 1, 1) for k in range(n)]
        starts = [sum(cfg.depths[:i]) for i in range(4)]
        in_chans = (cfg.in_chans,) + cfg.embed_dims[:3]
        self.stages = nn.ModuleList(
            Stage(cfg, i, in_chans[i], rates[starts[i]: starts[i] + cfg.depths[i]]) for i in range(4)
        )
        self.apply(_init_encoder_weights)
        for stage in self.stages:
            if stage.pos_embed is not None:
                nn.init.trunc_normal_(stage.pos_embed, std=0.02)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage outputs c1..c4, each (B, C_i, ceil(H/s_i), ceil(W/s_i)) after the stage norm."""
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    forward = forward_features


class AllMLPHead(nn.Module):
    """Per-stage Linear(C_i, E), bilinear upsampling to c1's grid, concat(c4, c3, c2, c1), 1×1 fuse
    conv (no bias) + BN + ReLU, Dropout2d, 1×1 classifier. Logits come out at 1/4 resolution.

    With ``fold=True`` (the default) the same function is computed in a cheaper order. The fuse conv
    is linear, so its slice F_i for stage i can be multiplied into that stage's projection W_i
    (E×E times E×C_i) and applied at the stage's own resolution; and bilinear interpolation commutes
    with any per-pixel affine map because its weights sum to one. So Σ_i up(F_i (W_i c_i + b_i)) equals
    the released fuse(concat(up(W_i c_i + b_i))) exactly in real arithmetic, while the 4E×E matmul at
    1/4 resolution (half of B0's multiply-accumulates) disappears. Parameters, checkpoints and
    gradients are those of the released head; ``fold=False`` runs the released order literally.
    """

    def __init__(self, cfg: SegFormerConfig) -> None:
        super().__init__()
        E = cfg.decoder_dim
        self.linear_c = nn.ModuleList(nn.Linear(c, E) for c in cfg.embed_dims)
        self.fuse_conv = nn.Conv2d(4 * E, E, 1, bias=False)
        self.fuse_bn = nn.BatchNorm2d(E, eps=BN_EPS)
        self.dropout = nn.Dropout2d(cfg.head_dropout)
        self.classifier = nn.Conv2d(E, cfg.num_classes, 1)
        self.fold = True
        # mmcv's ConvModule initialises the fuse conv with Kaiming-normal (fan_out, ReLU) and its BN
        # with 1/0; the Linear projections and the classifier keep PyTorch's defaults, as released.
        nn.init.kaiming_normal_(self.fuse_conv.weight, mode="fan_out", nonlinearity="relu")

    def fused_features(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The fused decoder feature after fuse conv + BN + ReLU: (B, E, h1, w1)."""
        size = features[0].shape[2:]
        E = self.fuse_conv.out_channels
        # fuse_conv's input channels are ordered c4, c3, c2, c1: stage i owns slice 3 - i
        fuse = self.fuse_conv.weight.view(E, 4, E).unbind(1)[::-1]  # per stage: E_out × E_in
        maps = []
        for feat, linear, fuse_i in zip(features, self.linear_c, fuse, strict=True):
            B, _, h, w = feat.shape
            tokens = feat.flatten(2).transpose(1, 2)  # B, h*w, C_i
            if self.fold:
                x = F.linear(tokens, fuse_i @ linear.weight, fuse_i @ linear.bias)  # B, h*w, E
            else:
                x = linear(tokens)
            # B, E, h, w in NCHW memory: CPU bilinear upsampling of a channels-last view is ~8× slower
            x = x.transpose(1, 2).reshape(B, E, h, w).contiguous()
            if (h, w) != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            maps.append(x)
        x = sum(maps[1:], maps[0]) if self.fold else self.fuse_conv(torch.cat(maps[::-1], dim=1))
        return F.relu(self.fuse_bn(x))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.fused_features(features)))


class SegFormer(EncoderDecoder):
    """Encoder + All-MLP head. ``forward`` maps (B, 3, H, W) to logits (B, K, ceil(H/4), ceil(W/4)).

    It implements the package's model protocol (``base.SegmentationModel``); its taps are the four stage
    outputs after each stage's norm, ``fused`` the head's feature after the fuse conv + BN + ReLU, and ``logits``.
    """

    family = "segformer"
    display_name = "SegFormer"

    def __init__(self, cfg: SegFormerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = MixVisionTransformer(cfg)
        self.head = AllMLPHead(cfg)

    @property
    def min_input_side(self) -> int:
        return min_input_side(self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.forward_features(x))


def _init_encoder_weights(m: nn.Module) -> None:
    """The released encoder init: Linear trunc_normal(0.02), LayerNorm 1/0, Conv2d N(0, sqrt(2/fan_out))."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def build_segformer(variant: str, num_classes: int, **overrides: object) -> SegFormer:
    """A freshly initialised SegFormer of `variant` ('b0'…'b5', or 'mit-b0' and the like) for `num_classes`
    classes; `overrides` replace any other SegFormerConfig field, e.g. ``ffn="plain", pos_embed="learned"``."""
    key = segformer_variant_name(variant)
    if key is None:
        raise UserError(f"unknown SegFormer variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    reject_unknown(overrides, SegFormerConfig, "model option(s)")
    return SegFormer(dataclasses.replace(VARIANTS[key], num_classes=num_classes, **overrides))
