"""The ``torch`` backend of the weather corruptions: snow, frost, fog, spatter, batched on any device.

Every function takes (B, 3, H, W) uint8 images and one seed per image and returns (B, 3, H, W) uint8 on the same
device; image b depends only on its own pixels and ``seeds[b]``. Where the random fields come from:

- frost and fog draw on the host from ``np.random.RandomState(seed)`` exactly as the ``fast`` backend does (frost's
  texture and crop, fog's plasma fractal in float64), so their randomness is the reference's own. Frost's blend is
  the reference's float64 expression tabulated for every pair of uint8 values, so frost is bit-exact; fog's blend
  runs in float32 and differs from the reference by at most 1 on a few pixels.
- snow and spatter need an H×W normal field per image; drawing it with the legacy RandomState on the host would be
  the bottleneck on a GPU, so it is drawn on the device from a ``torch.Generator`` seeded with the seed. Their
  outputs therefore match the reference in distribution, not pixel for pixel; given the reference's own field
  (``snow_from_fields`` and ``spatter_from_field``), the arithmetic matches it up to float32 rounding (at most 1
  on a few pixels). Snow's motion angle, U(-135, -45), is the first draw of ``np.random.RandomState(seed)`` (the
  reference draws it after the field).
- spatter's liquid mode (severities 1–3) runs the reference's OpenCV chain (Canny, distance transform,
  equalisation) on the host, per image: OpenCV has no batched or device equivalent that gives the same edges.
  Fog's fractal (about 45 ms per 1024 × 2048 image on one core) and this chain are the host-side costs per image.

Filters are loops over taps of shifted slices rather than ``conv2d``: the sum then runs in a fixed order for each
pixel, so a result cannot depend on which algorithm cuDNN picks for a given batch size.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import fast_weather as fw
from .kernels import motion_taps
from .torch_ops import check_batch, gaussian_filter, to_uint8


def _device_normal(seeds: Sequence[int], shape: tuple[int, int], loc: float, scale: float, device) -> torch.Tensor:
    """(B, *shape) float32 normal fields, image b from a torch.Generator on `device` seeded with seeds[b]."""
    fields = []
    for seed in seeds:
        generator = torch.Generator(device=device).manual_seed(int(seed))
        fields.append(torch.randn(shape, generator=generator, device=device, dtype=torch.float32))
    return torch.stack(fields) * scale + loc


# /////////////// snow ///////////////


def _clipped_zoom(layer: torch.Tensor, zoom: float) -> torch.Tensor:
    """The reference's clipped_zoom of (B, H, W): scipy's order-1 zoom maps corners to corners (align_corners)."""
    h, w = layer.shape[-2:]
    ch0, ch1 = int(np.ceil(h / float(zoom))), int(np.ceil(w / float(zoom)))
    top0, top1 = (h - ch0) // 2, (w - ch1) // 2
    crop = layer[:, None, top0 : top0 + ch0, top1 : top1 + ch1]
    size = (int(round(ch0 * zoom)), int(round(ch1 * zoom)))  # scipy's output shape
    return F.interpolate(crop, size=size, mode="bilinear", align_corners=True)[:, 0]


def _motion_blur(layer: torch.Tensor, radius: int, sigma: float, angles: Sequence[float], out_shape) -> torch.Tensor:
    """The reference's `_motion_blur` of (B, Hz, Wz), each image along its own angle, on the top-left out_shape."""
    B, Hz, Wz = layer.shape
    taps = 2 * radius + 1
    dy = np.zeros((B, taps), dtype=np.int64)
    dx = np.zeros((B, taps), dtype=np.int64)
    weight = np.zeros((B, taps), dtype=np.float32)  # taps past the reference's stop keep weight 0 (adding nothing)
    for b, angle in enumerate(angles):
        for i, (k, oy, ox) in enumerate(motion_taps((Hz, Wz), radius, sigma, angle)):
            dy[b, i], dx[b, i], weight[b, i] = oy, ox, k
    device = layer.device
    dy, dx, weight = (torch.from_numpy(a).to(device) for a in (dy, dx, weight))
    H, W = out_shape
    rows, cols = torch.arange(H, device=device), torch.arange(W, device=device)
    out = torch.zeros((B, H, W), dtype=torch.float32, device=device)
    for i in range(taps):
        # shifted[b, y, x] = layer[b, clip(y - dy), clip(x - dx)]: the edge-replicated shift, rows then columns
        r = (rows[None, :] - dy[:, i, None]).clamp(0, Hz - 1)  # (B, H)
        c = (cols[None, :] - dx[:, i, None]).clamp(0, Wz - 1)  # (B, W)
        shifted = layer.gather(1, r[:, :, None].expand(B, H, Wz)).gather(2, c[:, None, :].expand(B, H, W))
        out.addcmul_(weight[:, i, None, None], shifted)
    return out


def _grey(x32: torch.Tensor) -> torch.Tensor:
    """cv2.COLOR_RGB2GRAY on (B, 3, H, W) float32 → (B, 1, H, W)."""
    return 0.299 * x32[:, 0:1] + 0.587 * x32[:, 1:2] + 0.114 * x32[:, 2:3]


def snow_from_fields(x: torch.Tensor, severity: int, noise: torch.Tensor, angles: Sequence[float]) -> torch.Tensor:
    """Snow given each image's normal field (B, H, W) and motion angle (degrees)."""
    c = fw._SNOW[severity - 1]
    H, W = x.shape[-2:]
    layer = _clipped_zoom(noise.to(x.device, torch.float32), c[2])
    layer = torch.where(layer < c[3], 0.0, layer).clamp(0, 1)
    flakes = torch.round(_motion_blur(layer, c[4], c[5], angles, (H, W)) * 255) / 255
    flakes = flakes[:, None]
    x32 = x.float() / 255
    x32 = c[6] * x32 + (1 - c[6]) * torch.maximum(x32, _grey(x32) * 1.5 + 0.5)
    return to_uint8(x32 + flakes + flakes.flip(-2, -1))


def snow_fields(seeds: Sequence[int], shape: tuple[int, int], severity: int, device) -> tuple[torch.Tensor, list]:
    """Each image's normal field (drawn on `device`) and motion angle (the first draw of its RandomState)."""
    c = fw._SNOW[severity - 1]
    noise = _device_normal(seeds, shape, c[0], c[1], device)
    angles = [np.random.RandomState(int(seed)).uniform(-135, -45) for seed in seeds]
    return noise, angles


def snow(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """imagecorruptions' snow, with the normal field drawn on the device (same distribution as the reference)."""
    check_batch(x, seeds)
    noise, angles = snow_fields(seeds, tuple(x.shape[-2:]), severity, x.device)
    return snow_from_fields(x, severity, noise, angles)


# /////////////// frost ///////////////


@functools.lru_cache(maxsize=16)
def _frost_texture(index: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """fw.frost_texture as a (3, Th, Tw) uint8 tensor kept on `device`."""
    texture = torch.from_numpy(fw.frost_texture(index, height, width).copy())
    return texture.permute(2, 0, 1).to(device)


@functools.lru_cache(maxsize=10)
def _frost_table(severity: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(fw.frost_table(severity).copy()).to(device)


def frost(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """imagecorruptions' frost, bit-exact: the reference's texture and crop, its blend tabulated on the device."""
    check_batch(x, seeds)
    H, W = x.shape[-2:]
    crops = []
    for seed in seeds:
        index, top, left = fw.frost_draws(np.random.RandomState(int(seed)), H, W)
        crops.append(_frost_texture(index, H, W, x.device)[:, top : top + H, left : left + W])
    pair = x.to(torch.int32) * 256 + torch.stack(crops)  # index x·256 + frost into the table
    return _frost_table(severity, x.device)[pair]


# /////////////// fog ///////////////


def fog(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """imagecorruptions' fog: the reference's plasma fractal (host, float64), the blend in float32."""
    check_batch(x, seeds)
    c = fw._FOG[severity - 1]
    H, W = x.shape[-2:]
    maps = [fw.fog_map(np.random.RandomState(int(seed)), H, W, severity) for seed in seeds]
    fractal = torch.from_numpy(np.stack(maps).astype(np.float32)).to(x.device)[:, None]
    max_val = x.amax(dim=(1, 2, 3), keepdim=True).float() / 255
    total = (x.float() / 255 + c[0] * fractal) * max_val / (max_val + c[0])
    return to_uint8(total)


# /////////////// spatter ///////////////


def _gaussian(t: torch.Tensor, sigma: float) -> torch.Tensor:
    """skimage.filters.gaussian of float32 (B, H, W) as spatter calls it: SciPy's kernel, mode 'nearest', rows
    first, each sum in the "outward" order this backend's spatter is defined by (see gaussian_filter)."""
    return gaussian_filter(t, sigma, mode="nearest", summation="outward")


def spatter_from_field(x: torch.Tensor, severity: int, noise: torch.Tensor) -> torch.Tensor:
    """Spatter given each image's normal field (B, H, W)."""
    c = fw._SPATTER[severity - 1]
    liquid = _gaussian(noise.to(x.device, torch.float32), c[2])
    liquid = torch.where(liquid < c[3], 0.0, liquid)
    x32 = x.float() / 255
    if c[5] == 0:  # liquid: water drops lit along their edges
        liquid8 = (liquid * 255).to(torch.uint8)
        dist = np.stack([fw.spatter_edge_distance(layer) for layer in liquid8.cpu().numpy()])
        m = liquid8.float() * torch.from_numpy(dist).to(x.device)
        peak = m.amax(dim=(1, 2), keepdim=True)
        m = (m / peak * c[4])[:, None]
        water = torch.from_numpy(fw._WATER).to(x.device)[None, :, None, None]
        out = to_uint8(x32 + m * water)
        # An all-zero mask makes the reference divide 0 by 0, and np.uint8 turns its NaNs into 0 (on x86-64; the
        # cast of NaN is platform-defined): that image comes out black here on every device.
        return torch.where(peak[:, None] > 0, out, 0)
    m = (liquid > c[3]).float()  # mud: brown blots
    m = _gaussian(m, c[4])
    m = torch.where(m < 0.8, 0.0, m)[:, None]
    mud = torch.from_numpy(fw._MUD.astype(np.float32)).to(x.device)[None, :, None, None]
    return to_uint8(x32 * (1 - m) + mud * m)


def spatter_field(seeds: Sequence[int], shape: tuple[int, int], severity: int, device) -> torch.Tensor:
    """Each image's normal field, drawn on `device`."""
    c = fw._SPATTER[severity - 1]
    return _device_normal(seeds, shape, c[0], c[1], device)


def spatter(x: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    """imagecorruptions' spatter, with the normal field drawn on the device (same distribution as the reference)."""
    check_batch(x, seeds)
    return spatter_from_field(x, severity, spatter_field(seeds, tuple(x.shape[-2:]), severity, x.device))


TORCH = {"snow": snow, "frost": frost, "fog": fog, "spatter": spatter}
