"""Image corruptions of Cityscapes-C / ImageNet-C, reproducible and fast, with three backends.

* ``reference``: imagecorruptions 1.1.2 itself on today's stack (``reference.py``).
* ``fast``: this package's vectorised CPU implementation (``fast_*.py``), bit-identical to the reference for
  the same image, severity and seed.
* ``torch``: batched on the model's device (``torch_*.py``) for on-the-fly evaluation.

``corrupt(image, name, severity, seed)`` takes an H×W×3 (or H×W grey) uint8 array; ``corrupt_batch`` a
(B, 3, H, W) uint8 tensor and one seed per image. Seeds come from ``derive_seed(suite_seed, image_id,
corruption, severity)``, a stable hash, so no output depends on order, batch composition, worker count or
sharding. The guarantee each backend gives per corruption is tabulated in the README.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from ..errors import UserError
from .protocols import CORRUPTIONS, PROTOCOLS, SEVERITIES, Protocol, get_protocol

Backend = Literal["reference", "fast", "torch"]
BACKENDS: tuple[str, ...] = ("reference", "fast", "torch")

__all__ = ["BACKENDS", "CORRUPTIONS", "PROTOCOLS", "SEVERITIES", "Protocol", "corrupt", "corrupt_batch",
           "derive_seed", "get_protocol"]


def check_suite_seed(seed: object, where: str = "seed") -> int:
    """A suite seed: an integer in [0, 2**64) (NumPy's seeds are unsigned; the store keeps 64 bits). Anything
    else is a UserError naming `where`, so that two spellings never hash to different trees unnoticed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise UserError(f"{where} must be an integer in [0, 2**64), got {str(seed)[:40]}")
    return int(seed)


def derive_seed(suite_seed: int, image_id: str, corruption: str, severity: int) -> int:
    """A seed in [0, 2**32) from (suite seed, image id, corruption, severity), stable across runs and machines.

    `suite_seed` must be in [0, 2**64) (``check_suite_seed``)."""
    key = f"{check_suite_seed(suite_seed)}\x1f{image_id}\x1f{corruption}\x1f{severity}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")


def check_name(name: str) -> str:
    if name not in CORRUPTIONS:
        raise UserError(f"unknown corruption {name!r}: choose one of {', '.join(CORRUPTIONS)}")
    return name


def check_severity(severity: int) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise UserError(f"severity must be an integer from 1 to 5, got {severity!r}")
    return int(severity)


def check_image(image: np.ndarray) -> np.ndarray:
    """An H×W×3 uint8 array (grey H×W or H×W×1 is stacked to three channels), at least 32×32."""
    if not isinstance(image, np.ndarray):
        raise UserError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise UserError(f"image must be uint8 (0–255), got {image.dtype}; convert with np.uint8 or clip first")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] != 3:
        raise UserError(f"image must be H×W×3 or H×W (grey), got shape {image.shape}")
    if min(image.shape[:2]) < 32:
        raise UserError(f"image is {image.shape[1]}×{image.shape[0]}: corruptions need at least 32×32 pixels")
    return image


def _check_seed(seed: int) -> int:
    if not 0 <= int(seed) < 2**32:
        raise UserError(f"seed must be in [0, 2**32), got {seed}")
    return int(seed)


def _fast_table() -> dict[str, Callable[[np.ndarray, int, int], np.ndarray]]:
    from .fast_blur import FAST as blur
    from .fast_digital import FAST as digital
    from .fast_weather import FAST as weather

    return {**blur, **digital, **weather}


def _torch_table() -> dict[str, Callable]:
    from .torch_blur import TORCH as blur
    from .torch_digital import TORCH as digital
    from .torch_weather import TORCH as weather

    return {**blur, **digital, **weather}


def corrupt(image: np.ndarray, name: str, severity: int, seed: int, backend: Backend = "fast") -> np.ndarray:
    """`image` under corruption `name` at `severity` (1–5) with randomness from `seed`: H×W×3 uint8."""
    name, severity, seed = check_name(name), check_severity(severity), _check_seed(seed)
    image = check_image(image)
    if backend == "reference":
        from .reference import reference_corrupt

        return reference_corrupt(image, name, severity, seed)
    if backend == "fast":
        return _fast_table()[name](np.ascontiguousarray(image), severity, seed)
    if backend == "torch":
        import torch

        batch = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        return corrupt_batch(batch, name, severity, [seed])[0].permute(1, 2, 0).numpy()
    raise UserError(f"unknown corruption backend {backend!r}: choose one of {', '.join(BACKENDS)}")


def corrupt_batch(images, name: str, severity: int, seeds: Sequence[int], backend: Backend = "torch"):
    """A (B, 3, H, W) uint8 tensor (any device) corrupted image by image with `seeds[b]`; same shape and device.

    ``backend="torch"`` computes on the tensor's device; ``"fast"``/``"reference"`` run per image on the CPU.
    """
    import torch

    name, severity = check_name(name), check_severity(severity)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise UserError("corrupt_batch needs a (B, 3, H, W) uint8 tensor")
    if len(seeds) != images.shape[0]:
        raise UserError(f"corrupt_batch got {len(seeds)} seeds for {images.shape[0]} images")
    if min(images.shape[-2:]) < 32:
        raise UserError(f"images are {images.shape[-1]}×{images.shape[-2]}: corruptions need at least 32×32 pixels")
    seeds = [_check_seed(s) for s in seeds]
    if backend == "torch":
        return _torch_table()[name](images, severity, seeds)
    out = [torch.from_numpy(corrupt(img.permute(1, 2, 0).cpu().numpy(), name, severity, s, backend))
           for img, s in zip(images, seeds, strict=True)]
    return torch.stack(out).permute(0, 3, 1, 2).to(images.device)
