"""The ``reference`` backend: imagecorruptions 1.1.2 itself, made to run on today's stack.

The published package (imagecorruptions 1.1.2; the code is its ``imagecorruptions/corruptions.py``) fails on a
current stack in four places; each is fixed here from the outside, without editing the installed package, by the
only change that keeps its output:

1. ``from pkg_resources import resource_filename`` (setuptools ≥ 82 has no pkg_resources; Python ≥ 3.12
   venvs have no setuptools): while the package is imported, a stand-in ``pkg_resources`` resolves its frost
   images relative to the package, and it is removed again afterwards.
2. ``skimage.filters.gaussian(..., multichannel=True)`` (removed in scikit-image 0.20): translated to
   ``channel_axis=-1``. Merely dropping the argument would blur across the colour channels.
3. ``np.float_`` in fog's plasma fractal (removed in NumPy 2): the module sees a NumPy whose ``float_`` is
   ``np.float64``, its exact alias (float32 would shift pixels); everything else is NumPy itself, so the
   legacy global random state is the one ``np.random.seed`` sets.
4. ``scipy.ndimage.interpolation.map_coordinates`` (deprecated module): ``scipy.ndimage.map_coordinates``.

Seed contract: ``reference_corrupt(image, name, severity, seed)`` is ``np.random.seed(seed)`` immediately
followed by the package's ``corrupt``. Impulse noise draws from scikit-image's own generator, which the
package leaves unseeded; here it is seeded with ``rng=seed`` (``numpy.random.default_rng(seed)``), which
makes it reproducible.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np


class _NumpyWithFloat_(types.ModuleType):
    """NumPy as the package sees it: ``float_`` is ``float64``; every other name is NumPy's own."""

    def __init__(self) -> None:
        super().__init__("numpy")
        self.float_ = np.float64

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def _gaussian(image: np.ndarray, *args: Any, multichannel: bool | None = None, **kwargs: Any) -> np.ndarray:
    from skimage.filters import gaussian

    if multichannel:
        kwargs["channel_axis"] = -1
    return gaussian(image, *args, **kwargs)


@contextlib.contextmanager
def _shims(package_dir: Path):
    """Stand-in modules present only while imagecorruptions is imported."""
    added = []
    if importlib.util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda _name, rel: str(package_dir / rel)
        sys.modules["pkg_resources"] = shim
        added.append("pkg_resources")
    try:
        with warnings.catch_warnings():
            # importing the deprecated scipy.ndimage.interpolation module warns; its function is replaced below
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


@functools.cache
def package() -> types.ModuleType:
    """The imagecorruptions package with the four fixes applied (imported once)."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or spec.origin is None:
        from ..errors import UserError

        raise UserError("the reference backend needs the imagecorruptions package: pip install imagecorruptions")
    import scipy.ndimage

    with _shims(Path(spec.origin).parent):
        module = importlib.import_module("imagecorruptions")
    impl = module.corruptions
    impl.np = _NumpyWithFloat_()
    impl.gaussian = _gaussian
    impl.map_coordinates = scipy.ndimage.map_coordinates
    return module


@contextlib.contextmanager
def _seeded_impulse(seed: int):
    """impulse_noise's scikit-image call with its generator seeded from `seed`."""
    import skimage

    impl = package().corruptions
    original = impl.sk
    util = types.SimpleNamespace(random_noise=functools.partial(skimage.util.random_noise, rng=seed))
    impl.sk = types.SimpleNamespace(util=util)
    try:
        yield
    finally:
        impl.sk = original


def reference_corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """imagecorruptions' ``corrupt(image, severity, name)`` right after ``np.random.seed(seed)``: uint8 H×W×3."""
    module = package()
    np.random.seed(seed)
    with _seeded_impulse(seed) if name == "impulse_noise" else contextlib.nullcontext():
        return module.corrupt(image, severity=severity, corruption_name=name)
