"""Reading images and writing results: a bad input file is a user's mistake, and no write is ever half done.

Every writer here writes a temporary file next to the target and renames it over the target
(``os.replace`` is atomic on one file system), so an interrupted run leaves either the old file or the
new one, never a truncated one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import UserError


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image at `path` as an (H, W, 3) uint8 RGB array, converted by ``rgb_array``'s rules (palette and
    grey images through their palette or as grey, 16-bit samples by their high byte, 32-bit and float
    images refused).

    An image whose header promises more pixels than ``max_image_pixels()`` is refused before it is decoded;
    the whole file is decoded here otherwise, so a truncated or corrupt file fails now, naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such image file; check the path")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; pass image files (e.g. {path / '*.png'})")
    try:
        with open_image(path) as image:
            image.load()
            return rgb_array(image, path)
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image Pillow can read; pass a PNG, JPEG or other common image file") from None
    except Image.DecompressionBombError as e:
        raise UserError(f"{path}: {e}; downscale the image first") from None
    # Pillow reports damaged data as OSError ("image file is truncated"), SyntaxError ("broken PNG file")
    # or ValueError, depending on the format and where the damage is.
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError(f"{path}: corrupt or truncated image ({e}); re-export or re-download it") from None


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; on success it is renamed to `path`, on error removed.

    The file gets the permissions a plain ``open(path, "w")`` would give (mkstemp's are owner-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an (H, W) uint8 array as an 8-bit grey PNG, or an (H, W, 3) one as RGB, atomically."""
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"write_png needs (H, W) or (H, W, 3) uint8, got {array.dtype} {array.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
    return Path(path)


def write_json(path: str | os.PathLike, data: object) -> Path:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)


def check_output_dir(path: str | os.PathLike) -> Path:
    """`path` as a Path, refusing one that exists and is not a directory (it would be clobbered or fail later)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a directory; choose another output directory")
    return path


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a directory's files (each one's relative name and contents, in sorted order):
    what a stored result records of the checkpoint it was computed with."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


# --- reading images: the pixel budget and the conversion to 8-bit RGB --------------------------------------

DEFAULT_MAX_IMAGE_PIXELS = 8192 * 8192  # 67 Mpx, 192 MiB as RGB: 32 Cityscapes frames; raise it with the variable
MAX_PIXELS_VARIABLE = "SEGFORMER_BENCH_MAX_PIXELS"


def max_image_pixels() -> int:
    """The pixel budget of one image: ``$SEGFORMER_BENCH_MAX_PIXELS`` if set (a positive integer), else
    ``DEFAULT_MAX_IMAGE_PIXELS``. Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``,
    twice which it refuses to open) still applies above it."""
    text = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        budget = int(text)
    except ValueError:
        budget = 0
    if budget < 1:
        raise UserError(f"${MAX_PIXELS_VARIABLE} must be a positive whole number of pixels, got {text!r}")
    return budget


@contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """``Image.open(path)`` refused, before any pixel is decoded, when its header promises more pixels than
    ``max_image_pixels()``: the check costs a header read, whatever the file claims."""
    import warnings

    with warnings.catch_warnings():  # this budget, checked below, replaces Pillow's warning
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path)
    with image:
        width, height = image.size
        budget = max_image_pixels()
        if width * height > budget:
            raise UserError(f"{path}: its header says {width}×{height} = {width * height:,} pixels, more than the "
                            f"budget of {budget:,}; downscale it, or raise ${MAX_PIXELS_VARIABLE}")
        yield image


# Pillow modes with 16-bit samples: they keep their high byte, v >> 8 (what Pillow itself does to the
# samples of a 16-bit RGB PNG, and libpng's strip_16), so 0 → 0 and 65535 → 255; Pillow's convert("RGB")
# would clip everything above 255 to white instead.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def rgb_array(image: Image.Image, path: str | os.PathLike) -> np.ndarray:
    """A decoded image as (H, W, 3) uint8 RGB: 8-bit RGB as it is; grey (L, 1) repeated; palette (P, PA)
    through its palette; alpha dropped (RGBA, LA); CMYK, YCbCr and the like by Pillow's conversion; 16-bit
    grey by the high byte of each sample (``SIXTEEN_BIT_MODES``). 32-bit integer (I) and float (F) images
    have no standard range and are refused rather than clipped."""
    if image.mode in SIXTEEN_BIT_MODES:
        grey = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode in ("I", "F"):
        kind = "32-bit integer" if image.mode == "I" else "floating-point"
        raise UserError(f"{path}: a {kind} image (Pillow mode {image.mode}) has no standard range to map to "
                        "8 bits; save it as an 8-bit (or 16-bit) PNG or JPEG, scaled as you intend")
    return np.array(image.convert("RGB"))  # a writable copy, which torch.from_numpy needs
