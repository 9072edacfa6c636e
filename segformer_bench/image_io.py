"""Reading images and writing results: a bad input file is a user's mistake, and no write is ever half done.

Every writer here writes a temporary file next to the target, flushes it to the disk, renames it over the
target (``os.replace`` is atomic on one file system) and flushes the directory, so an interrupted run — or a
machine that loses power — leaves either the old file or the new one, never a truncated one. A write that
fails because the disk is full, read-only or not ours to write is the user's to fix: one line naming the
path (``writing``). ``locked_dir`` keeps a second process out of a directory a run is writing.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
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


# errno → what the user can do about it; any other OSError is a bug or a failing disk and keeps its traceback.
_FIXABLE = {errno.ENOSPC: "the disk is full; free some space",
            errno.EDQUOT: "the disk quota is exceeded; free some space",
            errno.EROFS: "the file system is read-only; choose a writable directory",
            errno.EACCES: "permission denied; choose a directory you can write to",
            errno.EPERM: "operation not permitted; choose a directory you can write to"}


def fixable_os_error(path: str | os.PathLike, error: OSError) -> UserError | None:
    """The one-line UserError for an OSError a user can fix (full disk, read-only or foreign directory), else None."""
    advice = _FIXABLE.get(error.errno)
    return None if advice is None else UserError(f"{path}: cannot write ({error.strerror}): {advice}, then run "
                                                 "the same command again")


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn the OSErrors of ``fixable_os_error`` raised inside the block into its one-line UserError."""
    try:
        yield
    except OSError as e:
        mapped = fixable_os_error(getattr(e, "filename", None) or path, e)
        if mapped is None:
            raise
        raise mapped from None


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory's entries (a rename in it) to the disk; file systems that cannot are skipped."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; on success it is flushed to the disk, renamed to `path` and the
    folder flushed (so that the rename itself survives a crash); on error it is removed.

    The file gets the permissions a plain ``open(path, "w")`` would give (mkstemp's are owner-only)."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # the data reaches the disk before the rename publishes it
            finally:
                os.close(fd)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
            fsync_dir(path.parent)
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


LOCK_FILE = ".lock"


def _lock_holder(lock: Path) -> str:
    """Who holds `lock`, from the JSON its holder writes into it (read again for a moment while it is being written)."""
    for _ in range(20):
        try:
            info = json.loads(lock.read_text() or "null")
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict):
            return f"pid {info.get('pid')} on host {info.get('host')}, since {info.get('started')}"
        time.sleep(0.05)
    return "another process (it has not written its pid yet)"


@contextmanager
def locked_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Hold `path`'s lock (``path/.lock``, created with the directory) for the block; another process that asks for
    it meanwhile gets a UserError naming the holder (pid, host, start time).

    The lock is ``flock`` on the file: the kernel releases it when its holder dies (kill -9 included), so a lock left
    by a dead process is taken over by the next one, and of two processes taking it at once exactly one gets it.
    The holder's pid, host and start time are written into the file for the message; the file itself stays.
    """
    import fcntl
    import socket

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a directory; choose another directory")
    lock = path / LOCK_FILE
    with writing(lock):
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{path} is in use by {_lock_holder(lock)}; wait for that run to finish (or stop it), "
                            "then run the same command again") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError as e:  # a full disk or quota: the lock holds without its holder's details
            if fixable_os_error(lock, e) is None:
                raise
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # so that the next holder's readers never see this process's pid
    finally:
        os.close(fd)  # releases the lock
