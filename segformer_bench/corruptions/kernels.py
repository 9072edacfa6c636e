"""Filter kernels that several corruption modules share, each computed by one function for every backend.

* SciPy's Gaussian kernel (``scipy.ndimage.gaussian_filter``'s, the filter behind ``skimage.filters.gaussian``
  that imagecorruptions calls): fast blur's NumPy filter and the torch backend's one filter
  (``torch_ops.gaussian_filter``) use it.
* The one-sided motion kernel and its taps: imagecorruptions 1.1.2's ``_motion_blur`` (``getMotionBlurKernel`` and
  the shift of each tap), which its ``motion_blur`` and ``snow`` both call. The fast and torch backends of both
  corruptions take their weights and shifts from :func:`motion_taps`.

NumPy only, so that the fast and the torch modules can import it without importing each other.
"""

from __future__ import annotations

import math

import numpy as np


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """SciPy's 1-D Gaussian kernel (float64) for `sigma`, of radius ``int(truncate · sigma + 0.5)``.

    The expression of ``scipy.ndimage``'s ``_gaussian_kernel1d`` (order 0), so the weights are SciPy's own bits.
    truncate=4.0 is SciPy's and skimage's default (the blur corruptions, spatter); elastic transform uses 3.
    """
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


def motion_kernel(radius: int, sigma: float) -> np.ndarray:
    """The reference's one-sided Gaussian of 2·radius + 1 taps, normalised to sum 1 (float64).

    imagecorruptions' ``getMotionBlurKernel(width, sigma)`` with ``getOptimalKernelWidth1D`` = 2·radius + 1:
    ``gauss_function(arange(width), 0, sigma) / sum``, with the same expression.
    """
    width = radius * 2 + 1
    k = np.exp(-(np.arange(width) ** 2) / (2 * (sigma**2))) / (np.sqrt(2 * np.pi) * sigma)
    return k / np.sum(k)


def motion_taps(shape: tuple[int, int], radius: int, sigma: float, angle: float) -> list[tuple[float, int, int]]:
    """(weight, dy, dx) of each tap the reference's ``_motion_blur`` adds to an array of `shape` (rows, columns).

    The shifts use its exact expressions (np.sin, np.cos, math.hypot, math.ceil): tap i moves the image by
    ``dy = -ceil(i · width · sin(angle) / hypot - 0.5)`` rows and ``dx`` likewise with cos. The reference stops
    at the first tap whose shift reaches the array's height or width ("simulated motion exceeded image
    borders"), so the list can be shorter than 2·radius + 1; tap 0 (no shift) is always in it.
    """
    kernel = motion_kernel(radius, sigma)
    width = len(kernel)
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(point[0], point[1])
    taps = []
    for i in range(width):
        dy = -math.ceil(((i * point[0]) / hypot) - 0.5)
        dx = -math.ceil(((i * point[1]) / hypot) - 0.5)
        if abs(dy) >= shape[0] or abs(dx) >= shape[1]:
            break  # "simulated motion exceeded image borders"
        taps.append((float(kernel[i]), dy, dx))
    return taps
