"""The library functions behind the CLI's ``models``, ``predict`` and ``convert`` subcommands.

Each checks everything the user gave it (paths, names, sizes) before it writes anything, so a mistake
leaves no partial output.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch
from tqdm import tqdm

from ..data.labels import IGNORE_INDEX, colorize
from ..engine.distributed import resolve_device
from ..engine.inference import Mode, check_input_size, predict
from ..errors import UserError
from ..image_io import atomic_path, check_output_dir, read_image, write_png
from ..models.checkpoints import export_huggingface, export_official, load_model, save_model
from ..models.open import entry_from, open_model
from ..models.profile import count_macs, count_parameters
from ..models.registry import build_model, variant_name
from ..models.segformer import VARIANTS
from ..models.segmenter import Segmenter, as_segmenter

ExportFormat = Literal["huggingface", "segformer-bench", "official"]
EXPORT_FORMATS: tuple[str, ...] = ("huggingface", "segformer-bench", "official")


def _silent(message: str) -> None:
    pass


# --------------------------------------------------------------------------------------------------
# models


def variant_table(variants: Sequence[str] | None = None, num_classes: int = 19, size: tuple[int, int] = (1024, 2048),
                  macs: bool = True, progress: bool = False) -> list[dict]:
    """One row per variant: encoder and total parameters, and multiply-accumulates of one forward pass at
    `size` (the paper's "GFLOPs"; None when `macs` is False)."""
    names = [variant_name(v) for v in variants] if variants else list(VARIANTS)
    rows = []
    for name in tqdm(names, desc="building models", disable=not progress, leave=False):
        # Built and counted on the meta device: no weights are initialised and no arithmetic runs, only
        # shapes flow, and the counts are the same.
        with torch.device("meta"):
            model = build_model(name, num_classes)
        rows.append({
            "variant": name,
            "encoder_params": count_parameters(model.encoder),
            "params": count_parameters(model),
            "gmacs": count_macs(model, size) / 1e9 if macs else None,
        })
    return rows


def format_variant_table(rows: Sequence[dict], num_classes: int, size: tuple[int, int]) -> str:
    """`variant_table` rows as an aligned plain-text table."""
    header = ("variant", "encoder params (M)", f"params, {num_classes} classes (M)", f"GMACs at {size[0]}×{size[1]}")
    body = [(r["variant"], f"{r['encoder_params'] / 1e6:.3f}", f"{r['params'] / 1e6:.3f}",
             "-" if r["gmacs"] is None else f"{r['gmacs']:.1f}") for r in rows]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:  # the variant left-aligned, the numbers right-aligned
        rest = (cell.rjust(w) for cell, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([cells[0].ljust(widths[0]), *rest])

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


# --------------------------------------------------------------------------------------------------
# predict


def model_from(checkpoint: str | os.PathLike | None, variant: str, num_classes: int | None) -> Segmenter:
    """The model in `checkpoint` (this package's in any layout, or a transformers directory), or a freshly
    initialised `variant` (19 classes unless told otherwise)."""
    if checkpoint is not None:
        entry = entry_from(checkpoint)
        if entry.family is None and num_classes is not None:  # an encoder-only file's new head
            entry = dataclasses.replace(entry, num_classes=num_classes)
        return open_model(entry, where=str(checkpoint))
    return as_segmenter(build_model(variant, 19 if num_classes is None else num_classes).eval())


def segment_images(images: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                   checkpoint: str | os.PathLike | None = None, variant: str = "b0", num_classes: int | None = None,
                   device: str = "cpu", mode: Mode = "whole", crop: tuple[int, int] = (1024, 1024),
                   stride: tuple[int, int] = (768, 768), log: Callable[[str], None] = _silent) -> list[Path]:
    """Segment each image and write ``<stem>_trainids.png`` (class ids, 8-bit grey) and ``<stem>_color.png``
    (the class colours) into `out_dir`; returns the written paths.

    Without a checkpoint the model is freshly initialised and `log` is told that its output is noise.
    """
    out = check_output_dir(out_dir)
    paths = [Path(p) for p in images]
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems and stems[path.stem] != path:
            raise UserError(f"{stems[path.stem]} and {path} would both write {path.stem}_*.png; rename one of them")
        stems[path.stem] = path
    # Decode every image and check its size up front, so that a bad one fails before anything is written.
    sizes = {path: read_image(path).shape[:2] for path in paths}
    model = model_from(checkpoint, variant, num_classes).to(resolve_device(device))
    for path, size in sizes.items():
        try:
            check_input_size(model, size, mode, crop, stride)
        except UserError as e:
            raise UserError(f"{path}: {e}") from None
    classes = model.num_classes
    if classes > IGNORE_INDEX:
        raise UserError(f"the model has {classes} classes; 8-bit label PNGs (255 = ignore) hold at most {IGNORE_INDEX}")
    if checkpoint is None:
        log(f"warning: no checkpoint given, so SegFormer-{variant_name(variant)} has random weights "
            "and its predictions are meaningless")

    written = []
    for path in paths:
        image = torch.from_numpy(read_image(path)).permute(2, 0, 1)[None]  # 1, 3, H, W
        labels = predict(model, image, mode=mode, crop=crop, stride=stride)[0].cpu().numpy()
        written.append(write_png(out / f"{path.stem}_trainids.png", labels))
        written.append(write_png(out / f"{path.stem}_color.png", colorize(labels, classes)))
    return written


# --------------------------------------------------------------------------------------------------
# convert


def convert_checkpoint(src: str | os.PathLike, out: str | os.PathLike, fmt: ExportFormat = "huggingface",
                       num_classes: int | None = None) -> Path:
    """Load any supported checkpoint and write it as `fmt`:

    * ``huggingface``: a transformers ``SegformerForSemanticSegmentation`` directory at `out`;
    * ``segformer-bench``: this package's own file, ``.safetensors`` or a torch file (``.pt``/``.pth``);
    * ``official``: an NVlabs-layout ``{'state_dict': …}`` torch file (``.pth``).
    """
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"unknown checkpoint format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if fmt == "huggingface":
        check_output_dir(out)
    else:
        suffixes = (".pt", ".pth", ".safetensors") if fmt == "segformer-bench" else (".pt", ".pth")
        if out.suffix not in suffixes:
            raise UserError(f"{out}: a {fmt} checkpoint is a file; name it with {' or '.join(suffixes)}")
        if out.is_dir():
            raise UserError(f"{out}: is a directory; give a file name such as {out / ('model' + suffixes[0])}")

    model = load_model(src, num_classes=num_classes)
    if fmt == "huggingface":
        return export_huggingface(model, out)
    if fmt == "segformer-bench":
        return save_model(model, out)
    with atomic_path(out) as tmp:
        torch.save({"state_dict": export_official(model)}, tmp)
    return out
