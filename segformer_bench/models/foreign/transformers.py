"""The ``transformers`` family: a directory written by transformers' ``save_pretrained`` behind the Segmenter.

Any model ``AutoModelForSemanticSegmentation`` maps (SegFormer, UperNet with any backbone, DPT, BEiT,
Data2VecVision, MobileViT/V2, MobileNetV2, …) and the universal models Mask2Former, MaskFormer and OneFormer
(``AutoModelForUniversalSegmentation``), loaded from the local directory only (``local_files_only``, never
``trust_remote_code``, tensors read with ``weights_only``), in float32, in eval mode on the CPU.

* Preprocessing is what the directory's image processor does to pixel values, read as transformers reads it
  (``processor_config.json``'s nested ``image_processor``, else ``preprocessor_config.json``; the image
  processor class's defaults for the fields left out; no file at all: the model type's processor defaults).
  Applied: the rescale (``do_rescale``/``rescale_factor``, folded into mean/std on 0–1 images), the
  normalisation (``do_normalize``, ``image_mean``/``image_std``; MobileViT's processor never normalises) and
  MobileViT's ``do_flip_channel_order`` (BGR). *Not* applied: the processor's ``size``/``crop_size`` resizing,
  centre crop and padding — the suite's eval settings decide the test resolution; each network input is
  instead resized up to the model's size divisor (``SIZE_DIVISORS``, or the universal processors' own
  ``size_divisor``, 32). A suite entry's ``preprocess:`` fields override all of these.
* Semantic models: the logits are ``model(pixel_values=x).logits`` at whatever resolution the model gives them
  (SegFormer 1/4, UperNet the input, DPT twice the patch grid); the Segmenter resizes them to the input.
* Universal models: per-class scores exactly as the image processor's ``post_process_semantic_segmentation``
  computes them — softmax(class logits) without the null class, times sigmoid(mask logits), summed over queries
  (Mask2Former first resizes the mask logits to 384×384, as its processor does) — resized to the network input
  as ``target_sizes`` would; the Segmenter returns their logarithm (floored at ``SCORE_FLOOR``) and is marked
  ``outputs="scores"``: the argmax is the library's labels, a softmax of them is no probability.
* ERF taps: ``stage1``…``stageN``, the backbone's stage maps (``STAGES``: a transformers Backbone's
  ``out_features`` maps, the 4-D hidden states the head reads, or a ViT's token sequences at the layers the head
  uses, reshaped to the patch grid); ``fused``, the head's last feature map before its classifier (for universal
  models the pixel decoder's mask features); ``logits``; and the entry's own ``taps:`` by module name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ConfigError, from_mapping
from ...errors import CheckpointError
from ..entry import ModelEntry
from ..segmenter import Preprocess, Segmenter
from .hooks import check_taps, recording, run_tapped

INSTALL = 'pip install "segformer-bench[transformers]"'
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
SCORE_FLOOR = 1e-12  # universal models' scores can underflow to 0; their log stays finite (≈ −27.6)
MIN_INPUT_SIDE = 32  # the smallest image side offered to any of these models (most have a 1/32 stage)
DEFAULT_DIVISOR = 32  # model types SIZE_DIVISORS does not list: most backbones downsample 32×
UNIVERSAL = ("mask2former", "maskformer", "oneformer")  # post-processed as the image processors do
NO_NORMALIZATION = ("MobileViTImageProcessor", "MobileViTImageProcessorPil")  # they ignore do_normalize


@dataclass(frozen=True)
class Source:
    """Where feature maps are read in a forward pass: a module's first input or its output (or an attribute of
    it, for transformers' output objects); a tensor or a sequence of them (tokens are put on the patch grid)."""

    module: str
    on_input: bool = False
    attribute: str | None = None
    per_resolution: bool = False  # keep only the last map of each resolution (a CNN's block outputs → stages)


# model type → where its stage maps are. A Backbone's ``feature_maps`` are its ``out_features``; SegFormer's
# decode head reads the four stage outputs; BEiT's FPN and DPT's neck read the ViT layers the head uses;
# MobileViT and MobileNetV2 give 4-D hidden states.
STAGES: dict[str, tuple[Source, ...]] = {
    "segformer": (Source("decode_head", on_input=True),),
    "upernet": (Source("backbone", attribute="feature_maps"),),
    "dpt": (Source("neck", on_input=True),),
    "beit": (Source("fpn", on_input=True),),
    "data2vec-vision": tuple(Source(f"fpn{i}", on_input=True) for i in range(1, 5)),
    "mobilevit": (Source("mobilevit", attribute="hidden_states"),),
    "mobilevitv2": (Source("mobilevitv2", attribute="hidden_states"),),
    "mobilenet_v2": (Source("mobilenet_v2", attribute="hidden_states", per_resolution=True),),
    **{t: (Source("model.pixel_level_module.encoder", attribute="feature_maps"),) for t in UNIVERSAL},
}

# model type → the head's final feature map: the input of its classifier; universal models: mask features.
FUSED: dict[str, Source] = {
    "segformer": Source("decode_head.classifier", on_input=True),
    "upernet": Source("decode_head.classifier", on_input=True),
    "dpt": Source("head.head.4", on_input=True),  # DPTSemanticSegmentationHead: conv, bn, relu, dropout, *conv*
    "beit": Source("decode_head.classifier", on_input=True),
    "data2vec-vision": Source("decode_head.classifier", on_input=True),
    "mobilevit": Source("segmentation_head.classifier", on_input=True),
    "mobilevitv2": Source("segmentation_head.classifier", on_input=True),
    "mobilenet_v2": Source("segmentation_head.classifier", on_input=True),
    "mask2former": Source("model.pixel_level_module", attribute="decoder_last_hidden_state"),
    "maskformer": Source("model.pixel_level_module", attribute="decoder_last_hidden_state"),
    "oneformer": Source("model.pixel_level_module", attribute="decoder_last_feature"),
}

# model type → the multiple its network input's sides are resized up to (or a function of its config).
SIZE_DIVISORS: dict[str, int | Callable[[Any], int]] = {
    "segformer": 1,  # overlapping padded patch embeddings take any size (as this package's own SegFormer)
    "upernet": 32,
    "dpt": lambda c: 2 * c.patch_size,  # the neck's last reassembled map halves the patch grid
    "beit": lambda c: c.patch_size,
    "data2vec-vision": 1,  # its head reads the square patch grid of config.image_size: resized to it (_fit)
    "mobilevit": 32,
    "mobilevitv2": 32,
    "mobilenet_v2": 32,
    **{t: 32 for t in UNIVERSAL},
}

# model type → its smallest input side where MIN_INPUT_SIDE is too small
MIN_INPUT_SIDES: dict[str, Callable[[Any], int]] = {
    "mobilevitv2": lambda c: 32 * c.patch_size,  # its 1/32 stage unfolds patch_size² patches, with no padding
}

MASK_SIZE = {"mask2former": (384, 384)}  # its post-processing resizes the mask logits to this first
FORWARD_OPTIONS = {"beit": {"interpolate_pos_encoding": True}}  # absolute position embeddings at any size
ONEFORMER_TASK = "the task is semantic"  # OneFormer's text task input, as its processor writes it
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")  # a saved tokenizer has one of them (CLIP's: both)


# --- reading the directory -----------------------------------------------------------------------------------

def _transformers(label: str) -> Any:
    try:
        import transformers
    except ImportError:
        raise ConfigError(f"{label}: family 'transformers' needs the transformers package; {INSTALL}") from None
    return transformers


@contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """transformers' own log lines and progress bars off while loading (what matters is raised as one line)."""
    logging = transformers.utils.logging
    before, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(before)
        if bars:
            logging.enable_progress_bar()


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def read_model_type(root: Path, label: str) -> str:
    """The ``model_type`` of the save_pretrained directory `root` (one ConfigError naming what is wrong)."""
    if not root.is_dir():
        raise ConfigError(f"{label}: path {str(root)!r} is not a directory; give the directory a transformers "
                          "model was saved to (save_pretrained)")
    config = root / "config.json"
    if not config.is_file():
        raise ConfigError(f"{label}: {root} has no config.json; point path at a directory written by "
                          "save_pretrained")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{label}: {config} is not readable JSON ({_one_line(e)}); save the model again "
                          "with save_pretrained") from None
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if not isinstance(model_type, str) or not model_type:
        raise ConfigError(f"{label}: {config} names no model_type; save the model again with save_pretrained")
    return model_type


def _auto_class(transformers: Any, model_type: str, label: str) -> tuple[Any, bool]:
    """(the Auto class that maps `model_type`, whether it is a universal model)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES as SEMANTIC,
    )
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES as UNIVERSAL_NAMES,
    )

    if model_type in SEMANTIC:
        return transformers.AutoModelForSemanticSegmentation, False
    if model_type in UNIVERSAL:
        return transformers.AutoModelForUniversalSegmentation, True
    if model_type in UNIVERSAL_NAMES:
        raise ConfigError(f"{label}: model type {model_type!r} is a universal segmentation model this family "
                          f"does not post-process (it reads {', '.join(UNIVERSAL)})")
    raise ConfigError(f"{label}: model type {model_type!r} is not a segmentation model transformers maps "
                      f"(semantic: {', '.join(sorted(SEMANTIC))}; universal: {', '.join(UNIVERSAL)})")


def _weights(root: Path, label: str) -> None:
    if not any((root / name).is_file() for name in WEIGHT_FILES):
        raise CheckpointError(f"{label}: {root} has no weights ({' or '.join(WEIGHT_FILES[::2])}); save the "
                              "model with save_pretrained")


def _load(auto: Any, root: Path, transformers: Any, label: str) -> nn.Module:
    """The model in float32, eval mode, every tensor from the directory (one CheckpointError otherwise)."""
    try:
        with _quiet(transformers):
            # mismatched shapes are loaded as fresh tensors and reported, so that they are named below
            model, info = auto.from_pretrained(str(root), local_files_only=True, trust_remote_code=False,
                                               weights_only=True, dtype=torch.float32, device_map=None,
                                               ignore_mismatched_sizes=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{label}: transformers could not load {root}: {_one_line(e)}") from None
    except Exception as e:
        # a broken weights file raises SafetensorError, a config field of the wrong type huggingface_hub's
        # validation error; anything else is a bug
        if not type(e).__module__.startswith(("safetensors", "huggingface_hub")):
            raise
        raise CheckpointError(f"{label}: transformers could not load {root}: {_one_line(e)}") from None
    # transformers would start missing (or mismatched) tensors from random values: refuse instead
    for kind in ("missing_keys", "mismatched_keys", "unexpected_keys"):
        keys = sorted(k if isinstance(k, str) else str(k[0]) for k in info.get(kind) or ())
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            raise CheckpointError(f"{label}: the weights in {root} do not fit its config.json "
                                  f"({kind.replace('_', ' ')}: {', '.join(keys[:3])}{more}); save the model "
                                  "again with save_pretrained")
    return model.float().eval()


# What an image processor does to pixel values (its resizing, cropping and padding are not applied).
PROCESSOR_FIELDS = ("do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std",
                    "do_flip_channel_order", "do_pad", "size_divisor")
IMAGENET = {"do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "image_mean": (0.485, 0.456, 0.406), "image_std": (0.229, 0.224, 0.225)}


def _processor_class(transformers: Any, name: Any, model_type: str) -> type | None:
    """The image processor class `name` (or, without one, the model type's), its PIL twin preferred (it needs no
    torchvision; the two share their settings)."""
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    names: list[str] = []
    if isinstance(name, str) and name.isidentifier():
        base = name.removesuffix("Fast").removesuffix("Pil")
        names += [base + "Pil", base]
    mapped = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type) or {}
    names += [n for n in (mapped.get("pil"), mapped.get("torchvision")) if n]
    for candidate in names:
        try:
            cls = getattr(transformers, candidate, None)
        except (ImportError, AttributeError):
            cls = None
        if isinstance(cls, type):
            return cls
    return None


def _json_object(file: Path, label: str) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{label}: {file} is not readable JSON ({_one_line(e)}); fix or delete it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: {file} must hold a JSON object; fix or delete it")
    return data


def processor_settings(transformers: Any, root: Path, model_type: str, label: str) -> tuple[dict[str, Any], str]:
    """(PROCESSOR_FIELDS of the directory's image processor, the name of its class).

    Read as transformers reads them: processor_config.json's nested "image_processor" first, else
    preprocessor_config.json; the image processor class's defaults for what the file leaves out (no file: the
    model type's class defaults, or IMAGENET). Nothing of transformers runs: the files are read as JSON and the
    defaults are class attributes (an image processor's constructor may fetch files, e.g. OneFormer's).
    """
    data: dict[str, Any] = {}
    if (root / "processor_config.json").is_file():
        nested = _json_object(root / "processor_config.json", label).get("image_processor")
        data = nested if isinstance(nested, dict) else {}
    if not data and (root / "preprocessor_config.json").is_file():
        data = _json_object(root / "preprocessor_config.json", label)
    cls = _processor_class(transformers, data.get("image_processor_type"), model_type)
    defaults = {f: getattr(cls, f) for f in PROCESSOR_FIELDS if hasattr(cls, f)} if cls is not None else IMAGENET
    return {f: data.get(f, defaults.get(f)) for f in PROCESSOR_FIELDS}, cls.__name__ if cls is not None else ""


def _three(value: Any, what: str, label: str) -> tuple[float, float, float]:
    values = [value] * 3 if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not (isinstance(values, (list, tuple)) and len(values) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        raise ConfigError(f"{label}: the image processor's {what} must be a number or 3 numbers (R, G, B), "
                          f"got {values!r}")
    return tuple(float(v) for v in values)


def processor_preprocess(settings: Mapping[str, Any], processor_class: str, label: str) -> Preprocess:
    """What an image processor's settings do to an image's values, as a Preprocess on the 0–1 scale."""
    rescale = settings.get("rescale_factor") if settings.get("do_rescale") else 1.0
    if not (isinstance(rescale, (int, float)) and not isinstance(rescale, bool) and math.isfinite(rescale)
            and rescale > 0):
        raise ConfigError(f"{label}: the image processor's rescale_factor must be a positive number, got "
                          f"{rescale!r}")
    if settings.get("do_normalize") and processor_class not in NO_NORMALIZATION:
        mean = _three(settings.get("image_mean"), "image_mean", label)
        std = _three(settings.get("image_std"), "image_std", label)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    # the network sees (v · rescale − mean) / std of 0–255 values v, i.e. (v/255 − m') / s' on 0–1 images with
    # m' = mean / (255 · rescale), s' = std / (255 · rescale): exact for any rescale factor (1/255: m' = mean)
    ratio = 255.0 * rescale
    channels = "BGR" if settings.get("do_flip_channel_order") else "RGB"
    divisor = settings.get("size_divisor")
    pads = settings.get("do_pad") is not False  # the universal processors pad to it (they have no do_pad)
    divisor = divisor if type(divisor) is int and divisor > 1 and pads else 1
    try:
        return Preprocess(mean=tuple(m / ratio for m in mean), std=tuple(s / ratio for s in std),
                          channels=channels, size_divisor=divisor)
    except ConfigError as e:
        raise ConfigError(f"{label}: the image processor's settings: {e}") from None


def class_names_of(config: Any) -> tuple[str, ...] | None:
    """The class names of config.id2label, or None when they are transformers' placeholders (LABEL_0, …)."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    names = tuple(id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels))
    return None if all(n == f"LABEL_{i}" for i, n in enumerate(names)) else names


# --- the Segmenter ---------------------------------------------------------------------------------------------

def _maps(value: Any, source: Source) -> list[torch.Tensor]:
    if source.attribute is not None:
        value = getattr(value, source.attribute)
    return [value] if isinstance(value, torch.Tensor) else list(value)


def _on_grid(t: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A ViT token sequence (B, L, C) → its patch tokens on the grid (B, C, gh, gw) (leading CLS etc. dropped)."""
    if t.ndim != 3:
        return t
    B, L, C = t.shape
    gh, gw = grid
    return t[:, L - gh * gw:].transpose(1, 2).reshape(B, C, gh, gw)  # (B, N, C) → (B, C, gh, gw)


def _last_per_resolution(maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    last: dict[tuple[int, int], torch.Tensor] = {}
    for m in maps:
        last.pop(tuple(m.shape[-2:]), None)
        last[tuple(m.shape[-2:])] = m
    return list(last.values())


class TransformersSegmenter(Segmenter):
    """A transformers segmentation model (module docstring): ``logits`` and ``tap_features`` of the network
    input, from one forward pass with hooks on the modules ``STAGES`` and ``FUSED`` name."""

    def __init__(self, model: nn.Module, model_type: str, universal: bool, extra_taps: Mapping[str, str],
                 task_inputs: torch.Tensor | None = None, **kwargs: Any) -> None:
        super().__init__(model, outputs="scores" if universal else "logits", **kwargs)
        self.model_type = model_type
        self.universal = universal
        self.stage_sources = STAGES.get(model_type, ())
        self.fused_source = FUSED.get(model_type)
        self.extra_taps = dict(extra_taps)
        self.register_buffer("task_inputs", task_inputs, persistent=False)

    # -- running the network ------------------------------------------------------------------------------

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        """Data2VecVision's head reshapes to the square patch grid of config.image_size: resize to it."""
        if self.model_type != "data2vec-vision":
            return x
        side = self.module.config.image_size
        side = (side, side) if isinstance(side, int) else tuple(side)
        return x if tuple(x.shape[-2:]) == side else F.interpolate(x, size=side, mode="bilinear",
                                                                   align_corners=False)

    def _run(self, x: torch.Tensor) -> Any:
        """The model's output for network input `x`."""
        model = self.module
        if self.model_type == "dpt":
            return self._run_dpt(x)
        if self.task_inputs is not None:
            return model(pixel_values=x, task_inputs=self.task_inputs.expand(x.shape[0], -1))
        return model(pixel_values=x, **FORWARD_OPTIONS.get(self.model_type, {}))

    def _run_dpt(self, x: torch.Tensor) -> torch.Tensor:
        # DPTForSemanticSegmentation.forward, with the patch grid passed to the neck: the library's forward lets
        # the neck assume a square grid, which fails on any non-square input
        model, config = self.module, self.module.config
        out = model.dpt(x, output_hidden_states=True)
        layers = [h for i, h in enumerate(out.hidden_states[1:]) if i in config.backbone_out_indices]
        if config.is_hybrid:
            layers = [*out.intermediate_activations,
                      *(h for i, h in enumerate(out.hidden_states[1:]) if i in config.backbone_out_indices[2:])]
        grid = (x.shape[-2] // config.patch_size, x.shape[-1] // config.patch_size)
        return model.head(model.neck(layers, *grid))

    def _logits_of(self, out: Any, x: torch.Tensor) -> torch.Tensor:
        if isinstance(out, torch.Tensor):
            return out
        if not self.universal:
            return out.logits
        masks = out.masks_queries_logits  # (B, Q, h, w)
        if self.model_type in MASK_SIZE:
            masks = F.interpolate(masks, size=MASK_SIZE[self.model_type], mode="bilinear", align_corners=False)
        classes = out.class_queries_logits.softmax(dim=-1)[..., :-1]  # (B, Q, K): the null class removed
        scores = torch.einsum("bqc,bqhw->bchw", classes, masks.sigmoid())  # (B, K, h, w)
        # as post_process_semantic_segmentation with target_sizes = the network input's size
        scores = F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return scores.clamp_min(SCORE_FLOOR).log()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self._fit(x)
        return self._logits_of(self._run(x), x)

    # -- taps ---------------------------------------------------------------------------------------------

    def tap_features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        x = self._fit(x)
        patch = getattr(self.module.config, "patch_size", None)
        grid = (x.shape[-2] // patch, x.shape[-1] // patch) if isinstance(patch, int) else (0, 0)
        wanted = set(names)
        sources = {}
        if any(n.startswith("stage") and n not in self.extra_taps for n in wanted):
            sources.update({f"s{i}": s for i, s in enumerate(self.stage_sources)})
        if "fused" in wanted and self.fused_source is not None:
            sources["fused"] = self.fused_source
        captured: dict[str, Any] = {}
        with recording(self.module, {k: (v.module, v.on_input) for k, v in sources.items()}, captured):
            found, out = run_tapped(self.module, self.extra_taps, names, lambda: self._run(x))
        result: dict[str, torch.Tensor] = dict(found)
        stages = [m for i in range(len(self.stage_sources)) if f"s{i}" in captured
                  for m in _maps(captured[f"s{i}"], self.stage_sources[i])]
        stages = [_on_grid(m, grid) for m in stages]
        if any(s.per_resolution for s in self.stage_sources):
            stages = _last_per_resolution(stages)
        for i, m in enumerate(stages):
            result.setdefault(f"stage{i + 1}", m)
        if "fused" in captured:
            result.setdefault("fused", _maps(captured["fused"], self.fused_source)[0])
        if "logits" in wanted:
            logits = self._logits_of(out, x).float()
            result["logits"] = self.class_map(logits) if self.class_map is not None else logits
        return {n: result[n] for n in names}


TOKENIZER_FIX = "save the processor (OneFormerProcessor.save_pretrained) there too"


def _tokenizer_files(root: Path, label: str) -> None:
    if not any((root / name).is_file() for name in TOKENIZER_FILES):
        # AutoTokenizer would build an empty CLIP tokenizer (every word unknown) instead of failing
        raise ConfigError(f"{label}: OneFormer needs its tokenizer for the task input, and {root} has none "
                          f"({' or '.join(TOKENIZER_FILES)}); {TOKENIZER_FIX}")


def _task_inputs(transformers: Any, root: Path, label: str) -> torch.Tensor:
    """OneFormer's task input for semantic segmentation, as OneFormerProcessor writes it: its text prompt in the
    directory's tokenizer, padded to config.task_seq_len (the length the model's task MLP reads), padding zeroed.
    Read before the weights are loaded, so that a directory without its tokenizer fails at once."""
    _tokenizer_files(root, label)
    try:
        with _quiet(transformers):
            length = transformers.AutoConfig.from_pretrained(str(root), local_files_only=True,
                                                             trust_remote_code=False).task_seq_len
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(root), local_files_only=True,
                                                                   trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{label}: OneFormer needs its tokenizer for the task input, and {root} has none that "
                          f"loads ({_one_line(e)}); {TOKENIZER_FIX}") from None
    tokens = tokenizer([ONEFORMER_TASK], padding="max_length", max_length=length, truncation=True)
    return torch.tensor(tokens["input_ids"], dtype=torch.long) * torch.tensor(tokens["attention_mask"])


def _preprocess(base: Preprocess, model_type: str, config: Any, overrides: Mapping[str, Any],
                label: str) -> Preprocess:
    own = SIZE_DIVISORS.get(model_type, DEFAULT_DIVISOR)
    own = own(config) if callable(own) else own
    divisor = math.lcm(own, base.size_divisor)
    return from_mapping(Preprocess, {**asdict(base), "size_divisor": divisor, **overrides}, f"{label}.preprocess")


def check_transformers(entry: ModelEntry, where: str) -> str:
    """What can be checked of a ``family: transformers`` entry without loading its weights (for ``validate``):
    transformers is importable, the directory holds a config.json of a model type this family reads, weights,
    readable image processor settings (and OneFormer's tokenizer). Returns the model type."""
    label = f"{where} ({entry.name})" if entry.name else where
    transformers = _transformers(label)
    root = Path(entry.path)
    model_type = read_model_type(root, label)
    _auto_class(transformers, model_type, label)
    _weights(root, label)
    processor_preprocess(*processor_settings(transformers, root, model_type, label), label)
    if model_type == "oneformer":
        _tokenizer_files(root, label)
    return model_type


def open_transformers(entry: ModelEntry, num_classes: int | None, where: str) -> Segmenter:
    """The Segmenter of a ``family: transformers`` entry (``path``: a save_pretrained directory)."""
    label = f"{where} ({entry.name})" if entry.name else where
    transformers = _transformers(label)
    root = Path(entry.path)
    model_type = read_model_type(root, label)
    auto, universal = _auto_class(transformers, model_type, label)
    task_inputs = _task_inputs(transformers, root, label) if model_type == "oneformer" else None
    settings, processor_class = processor_settings(transformers, root, model_type, label)
    _weights(root, label)
    model = _load(auto, root, transformers, label)
    config = model.config
    preprocess = _preprocess(processor_preprocess(settings, processor_class, label), model_type, config,
                             entry.preprocess, label)
    check_taps(model, entry.taps, label)
    seg = TransformersSegmenter(
        model, model_type, universal, entry.taps, task_inputs=task_inputs, name=entry.name or root.name,
        family="transformers", display_name=entry.name or root.name, num_classes=config.num_labels,
        preprocess=preprocess, taps=(), class_names=class_names_of(config),
        min_input_side=max(MIN_INPUT_SIDES[model_type](config) if model_type in MIN_INPUT_SIDES
                           else MIN_INPUT_SIDE, preprocess.size_divisor),
        description={"path": str(root), "model_type": model_type,
                     "architectures": list(getattr(config, "architectures", None) or [])})
    seg.eval()
    seg.taps = _tap_names(seg, label)
    return seg


def _tap_names(seg: TransformersSegmenter, label: str) -> tuple[str, ...]:
    """stage1…stageN (N from one small forward pass), fused, the entry's taps, logits."""
    names: list[str] = []
    if seg.stage_sources:
        names = [f"stage{i + 1}" for i in range(_count_stages(seg))]
    if seg.fused_source is not None:
        names.append("fused")
    clash = [n for n in seg.extra_taps if n in names or n == "logits"]
    if clash:
        raise ConfigError(f"{label}.taps: {', '.join(clash)} already name(s) a tap of this model "
                          f"({', '.join(names)}, logits); choose other names")
    return (*names, *seg.extra_taps, "logits")


def _count_stages(seg: TransformersSegmenter) -> int:
    """How many stage maps the model gives: one forward pass on a small blank image."""
    side = max(64, 2 * seg.preprocessing.size_divisor, seg.min_input_side)
    captured: dict[str, Any] = {}
    x = seg._fit(torch.zeros(1, 3, side, side))
    sources = {f"s{i}": (s.module, s.on_input) for i, s in enumerate(seg.stage_sources)}
    with torch.no_grad(), recording(seg.module, sources, captured):
        seg._run(x)
    stages = [m for i, s in enumerate(seg.stage_sources) for m in _maps(captured[f"s{i}"], s)]
    return len(_last_per_resolution(stages)) if any(s.per_resolution for s in seg.stage_sources) else len(stages)

