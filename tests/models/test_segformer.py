"""SegFormer against independent oracles: transformers' implementation and the reference figures.

LayerNorm eps: the released code uses 1e-6 in the blocks and stage norms and 1e-5 elsewhere, while
transformers builds every LayerNorm with PyTorch's default 1e-5. For the exact-parity checks the
oracle's block and stage norms are set to 1e-6 (``match_released_eps``); a separate test measures the
difference the eps alone makes with transformers left as it ships.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import SegformerForSemanticSegmentation  # noqa: E402

import segformer_bench as sb
from segformer_bench.models.profile import count_macs, count_parameters
from segformer_bench.models.segformer import VARIANTS

from ..helpers import hf_config, hf_logits, hf_model, match_released_eps, randomize_


@pytest.mark.parametrize("variant", ["b0", "b2"])
@pytest.mark.parametrize("size", [(67, 93), (130, 97)])
def test_logits_match_transformers_loaded_from_huggingface(tmp_path, variant, size):
    hf = hf_model(variant)
    hf.save_pretrained(tmp_path / "hf")
    ours = sb.load_model(tmp_path / "hf")
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        got = ours(x)
    want = hf_logits(hf, x)
    assert got.shape == (2, 19, math.ceil(size[0] / 4), math.ceil(size[1] / 4)) == want.shape
    assert (got - want).abs().max().item() < 1e-4


@pytest.mark.parametrize("variant", ["b0", "b2"])
def test_logits_match_transformers_after_export(tmp_path, variant):
    torch.manual_seed(1)
    ours = randomize_(sb.build_model(variant, num_classes=7), seed=3).eval()
    sb.export_huggingface(ours, tmp_path / "export")
    hf, info = SegformerForSemanticSegmentation.from_pretrained(tmp_path / "export", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    match_released_eps(hf)
    x = torch.randn(1, 3, 75, 101)
    with torch.no_grad():
        got = ours(x)
    assert (got - hf_logits(hf.eval(), x)).abs().max().item() < 1e-4


def test_layernorm_eps_difference_is_small(tmp_path):
    """transformers as shipped (eps 1e-5 everywhere) differs from the released eps by far less than 1e-4."""
    hf = hf_model("b0", released_eps=False)
    hf.save_pretrained(tmp_path / "hf")
    ours = sb.load_model(tmp_path / "hf")
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        diff = (ours(x) - hf_logits(hf, x)).abs().max().item()
    assert 0 < diff < 1e-4


def test_stage_features_match_transformers_hidden_states(tmp_path):
    hf = hf_model("b1")
    hf.save_pretrained(tmp_path / "hf")
    ours = sb.load_model(tmp_path / "hf")
    x = torch.randn(1, 3, 61, 83)
    with torch.no_grad():
        feats = ours.encoder.forward_features(x)
        hidden = hf(pixel_values=x, output_hidden_states=True).hidden_states
    strides = (4, 8, 16, 32)
    for f, h, s in zip(feats, hidden, strides, strict=True):
        assert f.shape[2:] == (math.ceil(61 / s), math.ceil(83 / s))
        assert (f - h).abs().max().item() < 1e-4


# Parameters (M) of the released MiT-B0…B5 encoders and of the whole models with 150 classes, counted on the
# NVlabs release (the paper's Table 1 prints them rounded to 0.1 M).
ENCODER_M = {"b0": 3.319, "b1": 13.151, "b2": 24.196, "b3": 44.072, "b4": 60.843, "b5": 81.443}
MODEL_150_M = {"b0": 3.753, "b1": 13.716, "b2": 27.462, "b3": 47.338, "b4": 64.108, "b5": 84.709}


@pytest.mark.parametrize("variant", list(ENCODER_M))
def test_parameter_counts_match_reference(variant):
    model = sb.build_model(variant, num_classes=150)
    assert round(count_parameters(model.encoder) / 1e6, 3) == ENCODER_M[variant]
    assert round(count_parameters(model) / 1e6, 3) == MODEL_150_M[variant]
    # and transformers' model of the same variant has exactly as many parameters
    if variant in ("b0", "b2"):
        hf = SegformerForSemanticSegmentation(hf_config(variant, 150))
        assert count_parameters(hf) == count_parameters(model)


def test_b0_cityscapes_parameter_count():
    assert round(count_parameters(sb.build_model("b0", num_classes=19)) / 1e6, 3) == 3.719


@pytest.mark.parametrize(("variant", "classes", "size", "gmacs"), [
    ("b0", 150, (512, 512), 8.4),
    ("b1", 150, (512, 512), 15.9),
    ("b0", 19, (1024, 2048), 121.0),
])
def test_macs_match_reference(variant, classes, size, gmacs):
    with torch.device("meta"):  # shapes only: the count is the same and nothing is computed
        model = sb.build_model(variant, classes)
    assert round(count_macs(model, size) / 1e9, 1) == gmacs


def test_macs_on_real_weights_equal_meta_count():
    assert count_macs(sb.build_model("b0", 19), (96, 160)) == count_macs(sb.build_model("b0", 19).to("meta"), (96, 160))


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "size", "gmacs"), [
    ("b2", (512, 512), 62.3), ("b3", (512, 512), 79.0), ("b4", (512, 512), 95.6), ("b5", (640, 640), 183.1),
    ("b1", (1024, 2048), 239.1), ("b2", (1024, 2048), 703.5), ("b5", (1024, 2048), 1446.4),
])
def test_macs_match_reference_large(variant, size, gmacs):
    classes = 19 if size == (1024, 2048) else 150
    with torch.device("meta"):
        model = sb.build_model(variant, classes)
    assert round(count_macs(model, size) / 1e9, 1) == gmacs


@pytest.mark.parametrize("overrides", [{}, {"ffn": "plain"}, {"pos_embed": "learned", "pos_embed_size": (64, 96)}])
@pytest.mark.parametrize("size", [(32, 32), (33, 47), (64, 96), (97, 130)])
def test_any_input_size(overrides, size):
    model = sb.build_model("b0", num_classes=5, **overrides).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 5, math.ceil(size[0] / 4), math.ceil(size[1] / 4))
    assert torch.isfinite(out).all()


def test_plain_ffn_has_no_depthwise_conv():
    model = sb.build_model("b0", num_classes=5, ffn="plain")
    assert not any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 for m in model.modules())
    mix = sb.build_model("b0", num_classes=5)
    depthwise = [m for m in mix.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == sum(VARIANTS["b0"].depths)


def test_position_embedding_resize_is_identity_at_training_size():
    model = sb.build_model("b0", num_classes=5, pos_embed="learned", pos_embed_size=(64, 96))
    for stage, stride in zip(model.encoder.stages, (4, 8, 16, 32), strict=True):
        grid = (math.ceil(64 / stride), math.ceil(96 / stride))
        assert stage.pos_grid == grid
        torch.testing.assert_close(stage.position_embedding(*grid), stage.pos_embed, rtol=0, atol=0)
        # and a bicubic resize of the same grid through torch itself is the identity too
        C = stage.pos_embed.shape[-1]
        img = stage.pos_embed.detach().transpose(1, 2).reshape(1, C, *grid)
        same = torch.nn.functional.interpolate(img, size=grid, mode="bicubic", align_corners=False)
        torch.testing.assert_close(same, img)


def test_drop_path_rates_rise_linearly_to_0_1():
    model = sb.build_model("b2", num_classes=5)
    rates = [block.drop_path.p for stage in model.encoder.stages for block in stage.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
    assert rates == pytest.approx([0.1 * k / (len(rates) - 1) for k in range(len(rates))])


def test_layernorm_eps_as_released():
    model = sb.build_model("b0", num_classes=5)
    stage = model.encoder.stages[0]
    assert stage.patch_embed.norm.eps == 1e-5 and stage.blocks[0].attn.sr_norm.eps == 1e-5
    assert stage.blocks[0].norm1.eps == stage.blocks[0].norm2.eps == stage.norm.eps == 1e-6


def test_kv_rows_are_keys_then_values():
    """Splitting kv as released (rows [:C] K, [C:] V) reproduces a hand-written attention."""
    torch.manual_seed(0)
    attn = sb.build_model("b0", num_classes=2).encoder.stages[3].blocks[0].attn.eval()  # R = 1, C = 256, 8 heads
    x = torch.randn(2, 12, 256)
    C, H = 256, 8
    q = x @ attn.q.weight.T + attn.q.bias
    k = x @ attn.kv.weight[:C].T + attn.kv.bias[:C]
    v = x @ attn.kv.weight[C:].T + attn.kv.bias[C:]
    q, k, v = (t.view(2, 12, H, C // H).transpose(1, 2) for t in (q, k, v))
    w = torch.softmax(q @ k.transpose(-1, -2) * (C // H) ** -0.5, dim=-1)
    want = (w @ v).transpose(1, 2).reshape(2, 12, C) @ attn.proj.weight.T + attn.proj.bias
    with torch.no_grad():
        got = attn(x, 3, 4)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_unknown_variant_and_option_are_user_errors():
    with pytest.raises(sb.UserError, match="unknown model variant 'b9'"):
        sb.build_model("b9", 19)
    with pytest.raises(sb.UserError, match="unknown model option"):
        sb.build_model("b0", 19, widht=3)
    assert sb.build_model("MiT-B1", 3).config.embed_dims == (64, 128, 320, 512)


def test_folded_head_matches_released_order_and_transformers(tmp_path):
    """The folded decoder (default) and the literal released order agree with each other and with the oracle."""
    hf = hf_model("b2")
    hf.save_pretrained(tmp_path / "hf")
    ours = sb.load_model(tmp_path / "hf")
    x = torch.randn(1, 3, 66, 98)
    want = hf_logits(hf, x)
    with torch.no_grad():
        folded = ours(x)
        ours.head.fold = False
        literal = ours(x)
    assert (folded - want).abs().max().item() < 1e-4
    assert (literal - want).abs().max().item() < 1e-4


def test_folded_head_gives_the_released_gradients():
    torch.manual_seed(0)
    model = randomize_(sb.build_model("b0", num_classes=6, drop_path_rate=0.0, head_dropout=0.0)).train()
    x = torch.randn(2, 3, 64, 80)
    target = torch.randint(0, 6, (2, 16, 20))
    grads = []
    for fold in (True, False):
        model.zero_grad()
        model.head.fold = fold
        torch.nn.functional.cross_entropy(model(x), target).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_depthwise_conv_is_torchs_conv2d_with_its_gradients(dtype):
    """Mix-FFN's depthwise 3×3 conv as `torch.compile` runs it (nine shifted multiply-adds on the tokens) against
    torch's own grouped Conv2d: values and the gradients of input, weight and bias, on a grid that is neither
    square nor even, two images; bf16 tokens (autocast's) computed as the conv would, within bf16's rounding."""
    from segformer_bench.models.segformer import depthwise_3x3_tokens

    torch.manual_seed(0)
    B, h, w, C = 2, 7, 11, 5
    conv = torch.nn.Conv2d(C, C, 3, padding=1, groups=C)
    tokens = torch.randn(B, h * w, C, dtype=dtype, requires_grad=True)
    want = conv(tokens.float().transpose(1, 2).reshape(B, C, h, w)).flatten(2).transpose(1, 2)
    got = depthwise_3x3_tokens(tokens, conv.weight, conv.bias, h, w)
    assert got.dtype == dtype
    tol = {"rtol": 0, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(got.float(), want, **tol)
    seed = torch.randn(B, h * w, C)
    grads_want = torch.autograd.grad(want, [tokens, conv.weight, conv.bias], seed)
    grads_got = torch.autograd.grad(got.float(), [tokens, conv.weight, conv.bias], seed)
    for g, r in zip(grads_got, grads_want, strict=True):
        torch.testing.assert_close(g.float(), r.float(), rtol=tol["rtol"], atol=10 * tol["atol"])


def test_a_compiled_mix_ffn_takes_the_shifted_form_and_an_eager_one_the_conv(monkeypatch):
    """Under `torch.compile` (traced by Dynamo) an fp32 Mix-FFN runs `depthwise_3x3_tokens`; eager, or under bf16
    autocast, it runs its Conv2d, so the eager model stays the released computation literally."""
    import segformer_bench.models.segformer as segformer

    calls = []
    original = segformer.depthwise_3x3_tokens
    monkeypatch.setattr(segformer, "depthwise_3x3_tokens", lambda *a: calls.append(1) or original(*a))
    torch.manual_seed(0)
    model = sb.build_model("b0", num_classes=3).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        eager = model(x)
        assert not calls
        compiled = torch.compile(model, backend="eager", dynamic=False)(x)
    assert len(calls) == sum(VARIANTS["b0"].depths)
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-5)
    calls.clear()  # under bf16 autocast the compiled model keeps the conv
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        torch.compile(model, backend="eager", dynamic=False)(x)
    assert not calls
