"""Every checkpoint layout a user brings loads into the same network as transformers' oracle.

The official (NVlabs) and ImageNet layouts are produced here from a transformers model by inverting the
renames of transformers' conversion script (``convert_segformer_original_to_pytorch.py``), written out
independently of the package's tables: if the package maps any tensor wrongly, its logits stop matching
transformers' on the same weights.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import save_file

import segformer_bench as sb
from segformer_bench.errors import CheckpointError

from ..helpers import hf_logits, hf_model


def hf_to_official(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers on-disk names → NVlabs names, inverting the conversion script's renames by hand."""
    out = {}
    for key, t in hf_state.items():
        k = key.replace("segformer.encoder.", "backbone.")
        k = re.sub(r"patch_embeddings\.(\d)\.", lambda m: f"patch_embed{int(m[1]) + 1}.", k)
        k = re.sub(r"backbone\.block\.(\d)\.", lambda m: f"backbone.block{int(m[1]) + 1}.", k)
        k = re.sub(r"backbone\.layer_norm\.(\d)\.", lambda m: f"backbone.norm{int(m[1]) + 1}.", k)
        k = k.replace("layer_norm_1", "norm1").replace("layer_norm_2", "norm2")
        k = k.replace("attention.self.query", "attn.q").replace("attention.output.dense", "attn.proj")
        k = k.replace("attention.self.", "attn.").replace("layer_norm", "norm")
        k = k.replace("mlp.dense1", "mlp.fc1").replace("mlp.dense2", "mlp.fc2")
        k = re.sub(r"decode_head\.linear_c\.(\d)\.", lambda m: f"decode_head.linear_c{int(m[1]) + 1}.", k)
        k = k.replace("decode_head.classifier", "decode_head.linear_pred")
        k = k.replace("decode_head.linear_fuse.weight", "decode_head.linear_fuse.conv.weight")
        k = k.replace("decode_head.batch_norm", "decode_head.linear_fuse.bn")
        out[k] = t
    for key in [k for k in out if k.endswith(("attn.key.weight", "attn.key.bias"))]:
        value = key.replace("attn.key", "attn.value")
        out[key.replace("attn.key", "attn.kv")] = torch.cat([out.pop(key), out.pop(value)], 0)
    return out


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """A randomised transformers B0 with the released LayerNorm eps, its on-disk state (what
    save_pretrained writes), and a test input."""
    from safetensors.torch import load_file

    model = hf_model("b0")
    directory = tmp_path_factory.mktemp("oracle")
    model.save_pretrained(directory)
    return model, load_file(str(directory / "model.safetensors")), torch.randn(1, 3, 70, 90)


def _close(ours: torch.nn.Module, oracle) -> None:
    model, _, x = oracle
    with torch.no_grad():
        diff = (ours(x) - hf_logits(model, x)).abs().max().item()
    assert diff < 1e-4


def test_official_training_checkpoint(tmp_path, oracle):
    _, hf_state, _ = oracle
    official = hf_to_official(hf_state)
    official["decode_head.conv_seg.weight"] = torch.randn(19, 256, 1, 1)  # present in the files, never used
    official["decode_head.conv_seg.bias"] = torch.randn(19)
    assert len(official) == 194  # the released B0/B1 files hold 194 tensors
    path = tmp_path / "segformer.b0.1024x1024.city.160k.pth"
    torch.save({"meta": {"CLASSES": ("road",) * 19, "PALETTE": [[0, 0, 0]] * 19, "mmcv_version": "1.2.7"},
                "state_dict": official}, path)
    model = sb.load_model(path)
    assert model.config.num_classes == 19 and model.config.decoder_dim == 256
    _close(model, oracle)


def test_imagenet_encoder_file(tmp_path, oracle):
    hf, hf_state, x = oracle
    encoder = {k.removeprefix("backbone."): v for k, v in hf_to_official(hf_state).items() if k.startswith("backbone.")}
    encoder["head.weight"] = torch.randn(1000, 256)
    encoder["head.bias"] = torch.randn(1000)
    torch.save(encoder, tmp_path / "mit_b0.pth")
    model = sb.load_model(tmp_path / "mit_b0.pth", num_classes=150)
    assert model.config.num_classes == 150 and model.head.classifier.out_channels == 150
    with torch.no_grad():
        ours = model.encoder.forward_features(x)
        theirs = hf(pixel_values=x, output_hidden_states=True).hidden_states
    for a, b in zip(ours, theirs, strict=True):
        assert (a - b).abs().max().item() < 1e-4
    with pytest.raises(CheckpointError, match="pass num_classes"):
        sb.load_model(tmp_path / "mit_b0.pth")


def test_huggingface_encoder_only_directory(tmp_path):
    from transformers import SegformerForImageClassification

    from ..helpers import hf_config

    torch.manual_seed(0)
    SegformerForImageClassification(hf_config("b1", 1000)).save_pretrained(tmp_path / "mit-b1")
    model = sb.load_model(tmp_path / "mit-b1", num_classes=19)
    assert model.config.embed_dims == (64, 128, 320, 512) and model.config.decoder_dim == 256


def test_pytorch_model_bin_directory(tmp_path, oracle):
    hf, hf_state, _ = oracle
    hf.config.save_pretrained(tmp_path / "hfbin")
    torch.save(hf_state, tmp_path / "hfbin" / "pytorch_model.bin")
    _close(sb.load_model(tmp_path / "hfbin"), oracle)


def test_sharded_safetensors_directory(tmp_path, oracle):
    hf, hf_state, _ = oracle
    hf.config.save_pretrained(tmp_path / "sharded")
    keys = sorted(hf_state)
    halves = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    weight_map = {}
    for shard, names in halves.items():
        save_file({k: hf_state[k].contiguous() for k in names}, str(tmp_path / "sharded" / shard))
        weight_map.update({k: shard for k in names})
    (tmp_path / "sharded" / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    _close(sb.load_model(tmp_path / "sharded"), oracle)


def test_transformers5_in_memory_names(tmp_path, oracle):
    hf, _, _ = oracle
    in_memory = hf.state_dict()
    assert any(k.startswith("segformer.stages.0.blocks.0.attention.q_proj") for k in in_memory)
    torch.save(in_memory, tmp_path / "t5.bin")
    _close(sb.load_model(tmp_path / "t5.bin"), oracle)
    # the same names inside a HuggingFace-style directory
    hf.config.save_pretrained(tmp_path / "t5dir")
    save_file({k: v.contiguous() for k, v in in_memory.items()}, str(tmp_path / "t5dir" / "model.safetensors"))
    _close(sb.load_model(tmp_path / "t5dir"), oracle)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("overrides", [{}, {"ffn": "plain", "pos_embed": "learned", "pos_embed_size": (64, 96)}])
def test_own_format_round_trip(tmp_path, suffix, overrides):
    model = sb.build_model("b0", num_classes=4, **overrides).eval()
    path = sb.save_model(model, tmp_path / f"ckpt{suffix}")
    loaded = sb.load_model(path)
    assert loaded.config == model.config
    x = torch.randn(1, 3, 80, 112)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert not list(tmp_path.glob("*.tmp"))


def test_official_export_round_trip(tmp_path):
    from segformer_bench.models.checkpoints import export_official

    model = sb.build_model("b2", num_classes=19).eval()
    torch.save({"state_dict": export_official(model)}, tmp_path / "b2.pth")
    loaded = sb.load_model(tmp_path / "b2.pth")
    assert loaded.config.depths == (3, 4, 6, 3) and loaded.config.decoder_dim == 768
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


# ------------------------------------------------------------------ bad checkpoints


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_needing_code_is_refused(tmp_path, capsys):
    torch.save({"state_dict": {"x": torch.zeros(1)}, "evil": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused to load"):
        sb.load_model(tmp_path / "evil.pth")
    assert "must never run" not in capsys.readouterr().out


def test_mmseg_reimplemented_head_is_refused(tmp_path):
    state = {"backbone.layers.0.0.projection.weight": torch.zeros(32, 3, 7, 7),
             "decode_head.convs.0.conv.weight": torch.zeros(256, 32, 1, 1),
             "decode_head.fusion_conv.conv.weight": torch.zeros(256, 1024, 1, 1)}
    torch.save({"state_dict": state}, tmp_path / "mmseg.pth")
    with pytest.raises(CheckpointError, match="mmsegmentation"):
        sb.load_model(tmp_path / "mmseg.pth")


def test_mismatch_names_missing_unexpected_and_misshaped(tmp_path):
    from segformer_bench.models.checkpoints import export_official

    state = export_official(sb.build_model("b0", num_classes=19))
    del state["backbone.block1.0.attn.q.bias"]
    state["backbone.block2.1.mlp.fc1.weight"] = torch.zeros(5, 64)
    torch.save({"state_dict": state}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as err:
        sb.load_model(tmp_path / "broken.pth")
    msg = str(err.value)
    assert "missing (encoder.stages.0.blocks.0.attn.q.bias)" in msg
    assert "mis-shaped (encoder.stages.1.blocks.1.mlp.fc1.weight (5, 64) vs model (256, 64))" in msg
    state["backbone.block9.0.mlp.fc1.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "broken2.pth")
    with pytest.raises(CheckpointError, match=r"1 unexpected \(encoder.stages.8.blocks.0.mlp.fc1.weight\)"):
        sb.load_model(tmp_path / "broken2.pth")
    state["backbone.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "broken3.pth")
    with pytest.raises(CheckpointError, match="does not know: backbone.extra.weight"):
        sb.load_model(tmp_path / "broken3.pth")


def test_unexpected_tensor_in_own_format(tmp_path):
    model = sb.build_model("b0", num_classes=3)
    state = dict(model.state_dict())
    state["encoder.stages.0.extra.weight"] = torch.zeros(2)
    torch.save({"format": "segformer-bench", "version": 1, "config": model.config.to_dict(), "model": state},
               tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=r"1 unexpected \(encoder.stages.0.extra.weight\)"):
        sb.load_model(tmp_path / "x.pt")


def test_wrong_num_classes_is_explained(tmp_path):
    sb.save_model(sb.build_model("b0", num_classes=19), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="19 classes but num_classes=150"):
        sb.load_model(tmp_path / "m.pt", num_classes=150)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.pth", None, "no such checkpoint"),
    ("garbage.pth", b"not a checkpoint at all", "not a readable PyTorch checkpoint"),
    ("garbage.safetensors", b"\x00\x01garbage", "not a readable safetensors"),
    ("other.pth", "tensors", "not a SegFormer checkpoint"),
    ("list.pth", "list", "expected a dict of tensors"),
])
def test_unreadable_files(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "tensors":
        torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    elif content == "list":
        torch.save([torch.zeros(1)], path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        sb.load_model(path)


def test_directory_without_config(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(CheckpointError, match="needs config.json"):
        sb.load_model(tmp_path / "d")
    (tmp_path / "d" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        sb.load_model(tmp_path / "d")
    (tmp_path / "d" / "config.json").write_text('{"model_type": "segformer"}')
    with pytest.raises(CheckpointError, match="no model.safetensors or pytorch_model.bin"):
        sb.load_model(tmp_path / "d")
