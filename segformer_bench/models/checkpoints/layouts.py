"""SegFormer's released layouts as data: name templates for the NVlabs/mmseg and HuggingFace checkpoints.

* ``official``: the NVlabs training checkpoints (mmseg 0.13's module names: ``backbone.block{i}.{j}``,
  ``decode_head.linear_fuse.conv``…) and, without the ``backbone.`` prefix, the ImageNet encoder files
  ``mit_b*.pth``;
* ``huggingface``: transformers' on-disk names, the renames of its conversion script
  (``convert_segformer_original_to_pytorch.py``), which also split ``kv`` into ``key`` and ``value``;
* ``transformers5``: transformers 5's in-memory names (``stages.{i}.blocks``, ``q_proj``…``o_proj``,
  ``sequence_reduction``), which ``torch.save(model.state_dict())`` of a transformers-5 model writes.

Each layout is a table of name templates, ours on the left and theirs on the right, used in both
directions: ``{i}`` is a 0-based stage index, ``{i1}`` the same stage counted from 1, ``{j}`` a block.
The architecture is read back from the tensors' shapes (``infer_config``), so any variant (or a custom
width) loads.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import torch

from ...errors import CheckpointError, EncoderOnlyError, UserError
from ..segformer import VARIANTS, SegFormer, SegFormerConfig, segformer_variant_of

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


def infer_config(state: Mapping[str, torch.Tensor], known: dict | None, num_classes: int | None) -> SegFormerConfig:
    """The SegFormer architecture the tensors (in our names) describe; fields shapes cannot tell come from
    `known` (a file's own config) or the defaults."""
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
            raise EncoderOnlyError("encoder-only checkpoint (no decoder weights): pass num_classes for the new head")
        fields["num_classes"] = num_classes
        probe = SegFormerConfig(embed_dims=tuple(dims), depths=tuple(depths))
        variant = segformer_variant_of(probe)
        fields["decoder_dim"] = VARIANTS[variant].decoder_dim if variant else 256

    merged = {**(known or {}), **{k: v for k, v in fields.items() if k not in (known or {})}}
    if known:  # a file's own config wins, but must agree with its tensors
        for k in ("embed_dims", "depths", "decoder_dim", "num_classes"):
            if k in known and list(_as_list(known[k])) != list(_as_list(fields[k])):
                raise CheckpointError(f"checkpoint config says {k}={known[k]} but its tensors say {fields[k]}")
    allowed = {f.name for f in dataclasses.fields(SegFormerConfig)}
    return SegFormerConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in merged.items() if k in allowed})


def _as_list(v: object) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def export_official(model: SegFormer) -> dict[str, torch.Tensor]:
    """Our state dict under the NVlabs names (``backbone.*``, ``decode_head.*``)."""
    if not isinstance(model.config, SegFormerConfig):
        raise UserError("only SegFormer models can be exported in the NVlabs layout; save a DeepLabV3+ with save_model")
    return from_ours(model.state_dict(), OFFICIAL_PREFIXES, OFFICIAL_LEAVES, split_kv=False)
