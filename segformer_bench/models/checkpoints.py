"""Reading and writing SegFormer checkpoints in every released layout.

Formats ``load_model`` recognises (REFERENCE.md §2):

* ``official``: NVlabs training checkpoints ``segformer.b*.*.pth``, ``{'state_dict': {backbone.*,
  decode_head.*}, 'meta': …}``; ``decode_head.conv_seg`` exists there but is never used, and is ignored;
* ``imagenet``: the encoder files ``mit_b*.pth`` (official names without ``backbone.``, plus a 1000-way
  ``head.*`` classifier that segmentation drops); the decoder is freshly initialised;
* ``huggingface``: a directory with ``config.json`` and ``model.safetensors`` / ``pytorch_model.bin``
  (sharded or not) in transformers' on-disk names, which split ``kv`` into ``key`` and ``value``;
* ``transformers5``: the same tensors under transformers 5's in-memory names (``stages.{i}.blocks``,
  ``q_proj``/``k_proj``/``v_proj``/``o_proj``, ``sequence_reduction``…), as ``torch.save(model.state_dict())``
  of a transformers-5 model writes them;
* ``segformer-bench``: this project's own files (``save_model``), which carry their config; a config with
  ``arch: deeplabv3plus`` holds the DeepLabV3+ baseline (``deeplab.py``), one without ``arch`` a SegFormer;
* ``torchvision-resnet``: a torchvision ResNet-50/101 ImageNet file (flat state dict), the encoder of a
  DeepLabV3+ whose head is freshly initialised.

Each foreign layout is a table of name templates, ours on the left and theirs on the right, used in
both directions: ``{i}`` is a 0-based stage index, ``{i1}`` the same stage counted from 1, ``{j}`` a block.
The architecture is read from the tensors' shapes, so any variant (or a custom width) loads.

mmsegmentation ≥ 0.17 re-implemented the decoder (BN+ReLU per stage, c1..c4 order); its checkpoints
cannot be mapped onto the released head and are refused with an explanation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..data.labels import CITYSCAPES_CLASSES
from ..errors import CheckpointError, UserError
from .deeplab import ARCH as DEEPLAB_ARCH
from .deeplab import DeepLabConfig, DeepLabV3Plus, is_torchvision_resnet, load_encoder_strict, resnet_depth_of
from .deeplab import checkpoint_filter_fn as torchvision_to_ours
from .segformer import VARIANTS, SegFormer, SegFormerConfig, variant_of

FORMAT_TAG = "segformer-bench"
FORMAT_VERSION = 1

# (ours, theirs) for whole-key prefixes; block-level leaves are a second table applied after the prefix.
_Table = list[tuple[str, str]]

OFFICIAL_PREFIXES: _Table = [
    ("encoder.stages.{i}.patch_embed.proj.", "backbone.patch_embed{i1}.proj."),
    ("encoder.stages.{i}.patch_embed.norm.", "backbone.patch_embed{i1}.norm."),
    ("encoder.stages.{i}.pos_embed", "backbone.pos_embed{i1}"),
    ("encoder.stages.{i}.blocks.{j}.", "backbone.block{i1}.{j}."),
    ("encoder.stages.{i}.norm.", "backbone.norm{i1}."),
    ("head.linear_c.{i}.", "decode_head.linear_c{i1}.proj."),
    ("head.fuse_conv.", "decode_head.linear_fuse.conv."),
    ("head.fuse_bn.", "decode_head.linear_fuse.bn."),
    ("head.classifier.", "decode_head.linear_pred."),
]
OFFICIAL_LEAVES: _Table = [
    ("attn.sr_norm.", "attn.norm."),
    ("mlp.dwconv.", "mlp.dwconv.dwconv."),
]

HF_PREFIXES: _Table = [
    ("encoder.stages.{i}.patch_embed.proj.", "segformer.encoder.patch_embeddings.{i}.proj."),
    ("encoder.stages.{i}.patch_embed.norm.", "segformer.encoder.patch_embeddings.{i}.layer_norm."),
    ("encoder.stages.{i}.blocks.{j}.", "segformer.encoder.block.{i}.{j}."),
    ("encoder.stages.{i}.norm.", "segformer.encoder.layer_norm.{i}."),
    ("head.linear_c.{i}.", "decode_head.linear_c.{i}.proj."),
    ("head.fuse_conv.", "decode_head.linear_fuse."),
    ("head.fuse_bn.", "decode_head.batch_norm."),
    ("head.classifier.", "decode_head.classifier."),
]
HF_LEAVES: _Table = [
    ("norm1.", "layer_norm_1."),
    ("norm2.", "layer_norm_2."),
    ("attn.q.", "attention.self.query."),
    ("attn.k.", "attention.self.key."),  # k and v are merged into attn.kv after renaming
    ("attn.v.", "attention.self.value."),
    ("attn.sr.", "attention.self.sr."),
    ("attn.sr_norm.", "attention.self.layer_norm."),
    ("attn.proj.", "attention.output.dense."),
    ("mlp.fc1.", "mlp.dense1."),
    ("mlp.fc2.", "mlp.dense2."),
    ("mlp.dwconv.", "mlp.dwconv.dwconv."),
]

HF5_PREFIXES: _Table = [
    ("encoder.stages.{i}.patch_embed.proj.", "segformer.stages.{i}.patch_embeddings.proj."),
    ("encoder.stages.{i}.patch_embed.norm.", "segformer.stages.{i}.patch_embeddings.layer_norm."),
    ("encoder.stages.{i}.blocks.{j}.", "segformer.stages.{i}.blocks.{j}."),
    ("encoder.stages.{i}.norm.", "segformer.stages.{i}.layer_norm."),
    ("head.linear_c.{i}.", "decode_head.linear_projections.{i}.proj."),
    *HF_PREFIXES[5:],
]
HF5_LEAVES: _Table = [
    ("norm1.", "layernorm_before."),
    ("norm2.", "layernorm_after."),
    ("attn.q.", "attention.q_proj."),
    ("attn.k.", "attention.k_proj."),
    ("attn.v.", "attention.v_proj."),
    ("attn.proj.", "attention.o_proj."),
    ("attn.sr.", "attention.sequence_reduction.sequence_reduction."),
    ("attn.sr_norm.", "attention.sequence_reduction.layer_norm."),
    ("mlp.dwconv.", "mlp.dwconv.dwconv."),
]

# Keys that exist in released files but have no counterpart in the model.
IGNORED = re.compile(r"^(decode_head\.conv_seg\.|head\.|classifier\.)")


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for field in ("i1", "i", "j"):
        pattern = pattern.replace(re.escape("{" + field + "}"), f"(?P<{field}>\\d+)")
    return re.compile("^" + pattern)


def _rename(key: str, prefixes: _Table, leaves: _Table, to_ours: bool) -> str | None:
    """Rename one key between our layout and a foreign one; None when no rule matches."""
    src, dst = (1, 0) if to_ours else (0, 1)
    for rule in prefixes:
        m = _template_regex(rule[src]).match(key)
        if m is None:
            continue
        fields = m.groupdict()
        stage = int(fields["i"]) if "i" in fields else int(fields.get("i1", 1)) - 1
        prefix = rule[dst].format(i=stage, i1=stage + 1, j=fields.get("j", ""))
        rest = key[m.end():]
        if "{j}" in rule[0]:  # inside a block: rename the leaf, longest match first
            for leaf in sorted(leaves, key=lambda r: -len(r[src])):
                if rest.startswith(leaf[src]):
                    rest = leaf[dst] + rest[len(leaf[src]):]
                    break
        return prefix + rest
    return None


def _merge_kv(state: dict[str, torch.Tensor]) -> None:
    """Merge separate key/value projections into the released kv layout: rows [:C] K, rows [C:] V."""
    for name in [k for k in state if ".attn.k." in k]:
        v_name = name.replace(".attn.k.", ".attn.v.")
        if v_name in state:
            state[name.replace(".attn.k.", ".attn.kv.")] = torch.cat([state.pop(name), state.pop(v_name)], 0)


def _split_kv(state: dict[str, torch.Tensor]) -> None:
    for name in [k for k in state if ".attn.kv." in k]:
        k, v = state.pop(name).chunk(2, dim=0)
        state[name.replace(".attn.kv.", ".attn.k.")] = k.contiguous()
        state[name.replace(".attn.kv.", ".attn.v.")] = v.contiguous()


def to_ours(state: Mapping[str, torch.Tensor], prefixes: _Table, leaves: _Table) -> tuple[dict, list[str]]:
    """Rename a foreign state dict into this project's names; returns (renamed, unmatched keys)."""
    out: dict[str, torch.Tensor] = {}
    unmatched = []
    for key, tensor in state.items():
        if IGNORED.match(key):
            continue
        new = _rename(key, prefixes, leaves, to_ours=True)
        if new is None:
            unmatched.append(key)
        else:
            out[new] = tensor
    _merge_kv(out)
    return out, unmatched


def from_ours(state: Mapping[str, torch.Tensor], prefixes: _Table, leaves: _Table,
              split_kv: bool) -> dict[str, torch.Tensor]:
    """Rename our state dict into a foreign layout (the inverse of ``to_ours``)."""
    state = dict(state)
    if split_kv:
        _split_kv(state)
    out = {}
    for key, tensor in state.items():
        new = _rename(key, prefixes, leaves, to_ours=False)
        if new is None:
            raise CheckpointError(f"tensor {key!r} has no counterpart in the target format")
        out[new] = tensor
    return out


# --------------------------------------------------------------------------------------------------
# Reading files


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        needs_code = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if needs_code is None:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt, truncated or not a torch "
                                  "file); download or export it again") from None
        raise CheckpointError(
            f"{path}: refused to load: the file needs the Python object {needs_code[1]!r} to be unpickled, "
            "which could run arbitrary code. Re-save its tensors with torch.save(state_dict) or safetensors."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({str(e).splitlines()[0][:200]})") from None


def _safetensors_load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def _read_hf_dir(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{path}: a checkpoint directory needs config.json (HuggingFace layout)")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path}: not valid JSON ({e})") from None
    if config.get("model_type") not in (None, "segformer"):
        raise CheckpointError(f"{config_path}: model_type is {config['model_type']!r}, not 'segformer'")
    state: dict[str, torch.Tensor] = {}
    for index_name, reader in (("model.safetensors.index.json", "st"), ("pytorch_model.bin.index.json", "pt")):
        if (path / index_name).is_file():
            shards = sorted(set(json.loads((path / index_name).read_text())["weight_map"].values()))
            for shard in shards:
                state.update(_safetensors_load(path / shard)[0] if reader == "st" else _torch_load(path / shard))
            return state, config
    if (path / "model.safetensors").is_file():
        return _safetensors_load(path / "model.safetensors")[0], config
    if (path / "pytorch_model.bin").is_file():
        loaded = _torch_load(path / "pytorch_model.bin")
        if not isinstance(loaded, Mapping):
            raise CheckpointError(f"{path / 'pytorch_model.bin'}: expected a state dict")
        return dict(loaded), config
    raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin next to config.json")


def _detect(state: Mapping[str, object]) -> str:
    keys = list(state)
    if is_torchvision_resnet(state):
        return "torchvision-resnet"
    if any(k.startswith("encoder.layer1.") for k in keys):
        raise CheckpointError("a bare DeepLabV3+ state dict: its atrous rates and output stride are not stored in "
                              "the tensors; save the model with save_model, which records its config")
    if any(k.startswith(("decode_head.convs.", "decode_head.fusion_conv.", "backbone.layers.")) for k in keys):
        raise CheckpointError(
            "this is an mmsegmentation (>= 0.17) SegFormer checkpoint: mmseg re-implemented the decoder "
            "(BN+ReLU per stage, c1..c4 order), so its head cannot be mapped onto the released SegFormer head. "
            "Use the official NVlabs checkpoint or a HuggingFace one instead."
        )
    if any(k.startswith("encoder.stages.") for k in keys):
        return FORMAT_TAG
    if any(k.startswith(("backbone.patch_embed", "decode_head.linear_fuse.conv")) for k in keys):
        return "official"
    if any(k.startswith("patch_embed1.") for k in keys):
        return "imagenet"
    if any(re.match(r"^(segformer\.)?encoder\.(patch_embeddings|block)\.", k) for k in keys):
        return "huggingface"
    if any(re.match(r"^(segformer\.)?stages\.\d+\.", k) for k in keys):
        return "transformers5"
    sample = ", ".join(keys[:3]) or "no tensors"
    raise CheckpointError(f"not a SegFormer checkpoint (nor a DeepLabV3+ or torchvision ResNet one) in any known "
                          f"layout (first keys: {sample})")


def _unwrap(obj: object, path: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The flat state dict inside a loaded file, and our config when the file is our own."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    if obj.get("format") == FORMAT_TAG:
        return dict(obj["model"]), dict(obj["config"])
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is not a dict of tensors")
    tensors = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors")
    return tensors, None


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None, str]:
    """(state dict in our names, config dict or None, detected format) for any supported file or directory."""
    path = Path(path).expanduser()
    hf_config = None
    config = None
    if path.is_dir():
        state, hf_config = _read_hf_dir(path)
    elif path.is_file():
        if path.suffix == ".safetensors":
            state, meta = _safetensors_load(path)
            config = json.loads(meta["segformer_bench_config"]) if "segformer_bench_config" in meta else None
        else:
            state, config = _unwrap(_torch_load(path), path)
    else:
        raise CheckpointError(f"{path}: no such checkpoint file or directory; check the path (a HuggingFace "
                              "checkpoint is the directory holding config.json)")

    fmt = FORMAT_TAG if (config or {}).get("arch") == DEEPLAB_ARCH else _detect(state)
    if fmt == "torchvision-resnet":
        state, unmatched = torchvision_to_ours(state), []
    elif fmt == "official":
        state, unmatched = to_ours(state, OFFICIAL_PREFIXES, OFFICIAL_LEAVES)
    elif fmt == "imagenet":
        prefixed = {("backbone." + k): v for k, v in state.items() if not k.startswith("head.")}
        state, unmatched = to_ours(prefixed, OFFICIAL_PREFIXES, OFFICIAL_LEAVES)
    elif fmt in ("huggingface", "transformers5"):
        # A bare SegformerModel is saved without the "segformer." prefix.
        state = {(k if k.startswith(("segformer.", "decode_head.", "classifier.")) else "segformer." + k): v
                 for k, v in state.items()}
        tables = (HF_PREFIXES, HF_LEAVES) if fmt == "huggingface" else (HF5_PREFIXES, HF5_LEAVES)
        state, unmatched = to_ours(state, *tables)
    else:
        unmatched = []
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else "")
        raise CheckpointError(f"{path}: {fmt} checkpoint has tensors this model does not know: {shown}")
    if config is None and hf_config is not None:
        config = _config_from_hf(hf_config)
    return state, config, fmt


def _config_from_hf(hf: dict) -> dict:
    def pick(key: str, default):
        return hf.get(key, default)

    mlp = pick("mlp_ratios", [4, 4, 4, 4])
    if len(set(mlp)) != 1:
        raise CheckpointError(f"config.json: per-stage mlp_ratios {mlp} differ; the released models use 4 everywhere")
    return {
        "num_heads": pick("num_attention_heads", [1, 2, 5, 8]),
        "sr_ratios": pick("sr_ratios", [8, 4, 2, 1]),
        "patch_sizes": pick("patch_sizes", [7, 3, 3, 3]),
        "strides": pick("strides", [4, 2, 2, 2]),
        "in_chans": pick("num_channels", 3),
        "mlp_ratio": mlp[0],
        "drop_path_rate": pick("drop_path_rate", 0.1),
        "head_dropout": pick("classifier_dropout_prob", 0.1),
    }


def infer_config(state: Mapping[str, torch.Tensor], known: dict | None, num_classes: int | None) -> SegFormerConfig:
    """The architecture the tensors describe; fields shapes cannot tell come from `known` or the defaults."""
    try:
        dims, depths, srs, patches = [], [], [], []
        for i in range(4):
            proj = state[f"encoder.stages.{i}.patch_embed.proj.weight"]
            dims.append(proj.shape[0])
            patches.append(proj.shape[-1])
            blocks = {int(m.group(1)) for k in state if (m := re.match(rf"encoder\.stages\.{i}\.blocks\.(\d+)\.", k))}
            depths.append(len(blocks))
            sr = state.get(f"encoder.stages.{i}.blocks.0.attn.sr.weight")
            srs.append(sr.shape[-1] if sr is not None else 1)
        in_chans = state["encoder.stages.0.patch_embed.proj.weight"].shape[1]
        mlp_ratio = state["encoder.stages.0.blocks.0.mlp.fc1.weight"].shape[0] // dims[0]
    except KeyError as e:
        raise CheckpointError(f"checkpoint lacks the encoder tensor {e.args[0]!r}") from None

    fields = {"embed_dims": dims, "depths": depths, "sr_ratios": srs, "patch_sizes": patches,
              "in_chans": in_chans, "mlp_ratio": mlp_ratio}
    fields["ffn"] = "mix" if "encoder.stages.0.blocks.0.mlp.dwconv.weight" in state else "plain"
    pos = state.get("encoder.stages.0.pos_embed")
    if pos is not None:
        fields["pos_embed"] = "learned"
        side = round(pos.shape[1] ** 0.5) * 4  # square unless the file's own config says otherwise
        fields["pos_embed_size"] = (side, side)
    if "head.linear_c.0.weight" in state:
        fields["decoder_dim"] = state["head.linear_c.0.weight"].shape[0]
        head_classes = state["head.classifier.weight"].shape[0]
        if num_classes is not None and num_classes != head_classes:
            raise CheckpointError(
                f"checkpoint's classifier has {head_classes} classes but num_classes={num_classes} was asked; "
                "omit num_classes, or start from an encoder-only (ImageNet) checkpoint to train a new head"
            )
        fields["num_classes"] = head_classes
    else:
        if num_classes is None:
            raise CheckpointError("encoder-only checkpoint (no decoder weights): pass num_classes for the new head")
        fields["num_classes"] = num_classes
        probe = SegFormerConfig(embed_dims=tuple(dims), depths=tuple(depths))
        fields["decoder_dim"] = VARIANTS[variant_of(probe)].decoder_dim if variant_of(probe) else 256

    merged = {**(known or {}), **{k: v for k, v in fields.items() if k not in (known or {})}}
    if known:  # a file's own config wins, but must agree with its tensors
        for k in ("embed_dims", "depths", "decoder_dim", "num_classes"):
            if k in known and list(_as_list(known[k])) != list(_as_list(fields[k])):
                raise CheckpointError(f"checkpoint config says {k}={known[k]} but its tensors say {fields[k]}")
    allowed = {f.name for f in dataclasses.fields(SegFormerConfig)}
    return SegFormerConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in merged.items() if k in allowed})


def _as_list(v: object) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def load_state_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], only_prefix: str = "") -> None:
    """Load `state` into `model`, raising one readable error that names missing, unexpected and
    mis-shaped tensors. With `only_prefix`, only the model's tensors under that prefix are required."""
    own = {k: v for k, v in model.state_dict().items() if k.startswith(only_prefix)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshaped = sorted(f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                       for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or misshaped:
        parts = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if names:
                parts.append(f"{len(names)} {label} ({', '.join(names[:4])}{', …' if len(names) > 4 else ''})")
        raise CheckpointError("checkpoint does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=not only_prefix)


def deeplab_config(state: Mapping[str, torch.Tensor], known: dict | None, num_classes: int | None,
                   where: str) -> DeepLabConfig:
    """The DeepLabV3+ config of an own-format file (`known`), or of a torchvision ResNet file (depth from its
    blocks, the rest the defaults, `num_classes` required); the classifier must agree with `num_classes`."""
    if known is None:
        depth = resnet_depth_of(state)
        if depth is None:
            raise CheckpointError(f"{where}: a ResNet of no supported depth (50 or 101)")
        if num_classes is None:
            raise CheckpointError(f"{where}: encoder-only checkpoint (ImageNet ResNet): pass num_classes for the "
                                  "new head")
        return DeepLabConfig(depth=depth, num_classes=num_classes)
    try:
        config = DeepLabConfig.from_dict(known)
    except UserError as e:
        raise CheckpointError(f"{where}: its config is invalid: {e}") from None
    if num_classes is not None and num_classes != config.num_classes:
        raise CheckpointError(f"{where}: checkpoint's classifier has {config.num_classes} classes but "
                              f"num_classes={num_classes} was asked; omit num_classes")
    return config


def load_model(path: str | os.PathLike, num_classes: int | None = None) -> SegFormer | DeepLabV3Plus:
    """A SegFormer or DeepLabV3+ built and loaded from any supported checkpoint (see the module docstring).

    The variant is read from the weights' shapes (a DeepLabV3+ file carries its config). For encoder-only
    files (ImageNet ``mit_b*.pth``, HuggingFace ``nvidia/mit-b*``, a torchvision ResNet) the decoder is freshly
    initialised for `num_classes`. The model is returned in eval mode on the CPU.
    """
    state, known, fmt = read_checkpoint(path)
    if fmt == "torchvision-resnet" or (known or {}).get("arch") == DEEPLAB_ARCH:
        deeplab = DeepLabV3Plus(deeplab_config(state, known, num_classes, str(path)))
        if fmt == "torchvision-resnet":
            load_encoder_strict(deeplab, state, str(path))
        else:
            try:
                load_state_strict(deeplab, state)
            except CheckpointError as e:
                raise CheckpointError(f"{path}: {e}") from None
        return deeplab.eval()
    config = infer_config(state, known, num_classes)
    model = SegFormer(config)
    encoder_only = not any(k.startswith("head.") for k in state)
    try:
        load_state_strict(model, state, only_prefix="encoder." if encoder_only else "")
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return model.eval()


def save_model(model: SegFormer | DeepLabV3Plus, path: str | os.PathLike,
               extra: Mapping[str, object] | None = None) -> Path:
    """Write this project's checkpoint: ``.safetensors`` (config in the metadata) or a torch file
    (``{'format', 'version', 'config', 'model', **extra}``, loadable with ``weights_only=True``).
    The file is written atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(tmp), metadata={"format": FORMAT_TAG,
                                             "segformer_bench_config": json.dumps(model.config.to_dict())})
    else:
        torch.save({"format": FORMAT_TAG, "version": FORMAT_VERSION, "config": model.config.to_dict(),
                    "model": state, **(extra or {})}, tmp)
    os.replace(tmp, path)
    return path


def export_huggingface(model: SegFormer, out_dir: str | os.PathLike, class_names: list[str] | None = None) -> Path:
    """Write `model` as a transformers ``SegformerForSemanticSegmentation`` directory
    (config.json + model.safetensors in transformers' on-disk names)."""
    from safetensors.torch import save_file

    cfg = model.config
    if not isinstance(cfg, SegFormerConfig):
        raise UserError("only SegFormer models can be exported to transformers; save a DeepLabV3+ with save_model")
    if cfg.ffn != "mix" or cfg.pos_embed != "none":
        raise UserError("transformers' SegFormer has no plain-FFN or positional-embedding variant: "
                        "only ffn='mix', pos_embed='none' models can be exported")
    if class_names is None:
        names = CITYSCAPES_CLASSES if cfg.num_classes == len(CITYSCAPES_CLASSES) else None
        class_names = list(names or (f"class_{k}" for k in range(cfg.num_classes)))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    hf_config = {
        "architectures": ["SegformerForSemanticSegmentation"],
        "model_type": "segformer",
        "num_channels": cfg.in_chans,
        "num_encoder_blocks": 4,
        "depths": list(cfg.depths),
        "sr_ratios": list(cfg.sr_ratios),
        "hidden_sizes": list(cfg.embed_dims),
        "patch_sizes": list(cfg.patch_sizes),
        "strides": list(cfg.strides),
        "num_attention_heads": list(cfg.num_heads),
        "mlp_ratios": [cfg.mlp_ratio] * 4,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "classifier_dropout_prob": cfg.head_dropout,
        "initializer_range": 0.02,
        "drop_path_rate": cfg.drop_path_rate,
        "layer_norm_eps": 1e-6,
        "decoder_hidden_size": cfg.decoder_dim,
        "reshape_last_stage": True,
        "semantic_loss_ignore_index": 255,
        "id2label": {str(k): n for k, n in enumerate(class_names)},
        "label2id": {n: k for k, n in enumerate(class_names)},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    hf_state = from_ours(state, HF_PREFIXES, HF_LEAVES, split_kv=True)
    tmp = out / "model.safetensors.tmp"
    save_file(hf_state, str(tmp), metadata={"format": "pt"})
    (out / "config.json.tmp").write_text(json.dumps(hf_config, indent=2))
    os.replace(tmp, out / "model.safetensors")
    os.replace(out / "config.json.tmp", out / "config.json")
    return out


def export_official(model: SegFormer) -> dict[str, torch.Tensor]:
    """Our state dict under the NVlabs names (``backbone.*``, ``decode_head.*``)."""
    if not isinstance(model.config, SegFormerConfig):
        raise UserError("only SegFormer models can be exported in the NVlabs layout; save a DeepLabV3+ with save_model")
    return from_ours(model.state_dict(), OFFICIAL_PREFIXES, OFFICIAL_LEAVES, split_kv=False)
