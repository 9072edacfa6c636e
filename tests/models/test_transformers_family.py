"""The ``transformers`` family against transformers itself: tiny random models built offline from configs, saved
with ``save_pretrained`` next to their image processor (non-default mean/std, so that reading them is proven),
opened through ``open_model``. The oracle is the library: its image processor's pixel values, its forward pass,
its post-processing, its own hidden states and head modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers as T

from segformer_bench.errors import CheckpointError, UserError
from segformer_bench.models.foreign.hooks import run_tapped
from segformer_bench.models.foreign.transformers import check_transformers
from segformer_bench.models.open import entry_from, open_model
from tests.helpers import one_line_error, randomize_

K = 5  # classes of every tiny model
MEAN, STD = [0.3, 0.4, 0.5], [0.2, 0.25, 0.3]  # not any processor's default
NAMES = ["road", "sidewalk", "building", "wall", "fence"]


def _four(**kw):
    return {"out_features": ["stage1", "stage2", "stage3", "stage4"], **kw}


def _segformer():
    return T.SegformerForSemanticSegmentation(T.SegformerConfig(
        depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
        decoder_hidden_size=16, num_labels=K, id2label=dict(enumerate(NAMES))))


def _upernet():
    backbone = T.ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], **_four())
    return T.UperNetForSemanticSegmentation(T.UperNetConfig(
        backbone_config=backbone, hidden_size=16, auxiliary_channels=8, use_auxiliary_head=True,
        pool_scales=[1, 2, 3, 6], num_labels=K))


def _dpt():
    return T.DPTForSemanticSegmentation(T.DPTConfig(
        hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=64,
        patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=16,
        use_auxiliary_head=False, num_labels=K))


def _beit():
    return T.BeitForSemanticSegmentation(T.BeitConfig(
        image_size=64, patch_size=8, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=32, out_indices=[1, 2, 3, 4], use_relative_position_bias=True, pool_scales=[1, 2],
        channels=16, use_auxiliary_head=False, num_labels=K))


def _data2vec():
    return T.Data2VecVisionForSemanticSegmentation(T.Data2VecVisionConfig(
        image_size=64, patch_size=8, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=32, out_indices=[1, 2, 3, 4], use_relative_position_bias=True, pool_scales=[1, 2],
        channels=16, use_auxiliary_head=False, num_labels=K))


def _mobilevit():
    return T.MobileViTForSemanticSegmentation(T.MobileViTConfig(
        image_size=64, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], num_attention_heads=2,
        aspp_out_channels=16, num_labels=K))


def _mobilevitv2():
    return T.MobileViTV2ForSemanticSegmentation(T.MobileViTV2Config(
        image_size=64, width_multiplier=0.25, aspp_out_channels=16, num_labels=K))


def _mobilenet_v2():
    return T.MobileNetV2ForSemanticSegmentation(T.MobileNetV2Config(
        image_size=64, depth_multiplier=0.25, output_stride=32, num_labels=K))


def _mask2former():
    backbone = T.SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                            window_size=4, **_four())
    return T.Mask2FormerForUniversalSegmentation(T.Mask2FormerConfig(
        backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=32,
        dim_feedforward=32, decoder_layers=2, encoder_layers=1, num_queries=6, num_attention_heads=2,
        common_stride=4, num_labels=K))


def _maskformer():
    backbone = T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], **_four())
    decoder = {"model_type": "detr", "d_model": 32, "encoder_layers": 1, "decoder_layers": 1,
               "decoder_attention_heads": 2, "encoder_attention_heads": 2, "decoder_ffn_dim": 32,
               "encoder_ffn_dim": 32, "num_queries": 6}
    return T.MaskFormerForInstanceSegmentation(T.MaskFormerConfig(
        backbone_config=backbone, fpn_feature_size=32, mask_feature_size=32, decoder_config=decoder, num_labels=K))


# kind → (model builder, its image processor class, whether it is a universal model)
MODELS = {
    "segformer": (_segformer, "SegformerImageProcessorPil", False),
    "upernet": (_upernet, "SegformerImageProcessorPil", False),
    "dpt": (_dpt, "DPTImageProcessorPil", False),
    "beit": (_beit, "BeitImageProcessorPil", False),
    "data2vec-vision": (_data2vec, "BeitImageProcessorPil", False),
    "mobilevit": (_mobilevit, "MobileViTImageProcessorPil", False),
    "mobilevitv2": (_mobilevitv2, "MobileViTImageProcessorPil", False),
    "mobilenet_v2": (_mobilenet_v2, "MobileNetV2ImageProcessorPil", False),
    "mask2former": (_mask2former, "Mask2FormerImageProcessorPil", True),
    "maskformer": (_maskformer, "MaskFormerImageProcessorPil", True),
}
SEMANTIC = [k for k, (_, _, universal) in MODELS.items() if not universal]
UNIVERSAL = [k for k, (_, _, universal) in MODELS.items() if universal]


def _processor(kind: str, **kw):
    return getattr(T, MODELS[kind][1])(image_mean=MEAN, image_std=STD, **kw)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """kind → (its directory, the library model, its image processor), built once per module."""
    cache: dict[str, tuple[Path, torch.nn.Module, object]] = {}

    def get(kind: str):
        if kind not in cache:
            torch.manual_seed(0)
            model = randomize_(MODELS[kind][0]()).eval()
            root = tmp_path_factory.mktemp(kind)
            model.save_pretrained(root)
            processor = _processor(kind)
            processor.save_pretrained(root)
            cache[kind] = root, model, processor
        return cache[kind]
    return get


def _entry(root: Path, **fields) -> dict:
    return {"name": "m", "family": "transformers", "path": str(root), **fields}


def _image(h: int = 64, w: int = 64, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """A uint8 HWC image and the same as a (1, 3, H, W) float tensor on 0–1."""
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return image, torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def _pixel_values(processor, image: np.ndarray) -> torch.Tensor:
    """The processor's own network input with its resizing, cropping and padding turned off."""
    return processor(images=image, do_resize=False, do_center_crop=False, do_pad=False,
                     return_tensors="pt")["pixel_values"]


def _up(logits: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


# --- (a) preprocessing, (b) outputs, (c) gradients ----------------------------------------------------------------

@pytest.mark.parametrize("kind", list(MODELS))
def test_preprocess_is_the_image_processors(kind, saved):
    root, _, processor = saved(kind)
    seg = open_model(_entry(root))
    for h, w in [(64, 64), (40, 56)]:
        image, x = _image(h, w)
        torch.testing.assert_close(seg.preprocess(x), _pixel_values(processor, image), rtol=0, atol=1e-6)
    # MobileViT: no normalisation at all, channels flipped to BGR (read from the processor, not assumed)
    assert (seg.preprocessing.channels == "BGR") == kind.startswith("mobilevit")


@pytest.mark.parametrize("kind", SEMANTIC)
def test_semantic_logits_are_the_library_forward(kind, saved):
    root, model, processor = saved(kind)
    seg = open_model(_entry(root))
    image, x = _image()
    with torch.no_grad():
        expected = _up(model(pixel_values=_pixel_values(processor, image)).logits, (64, 64))
        got = seg(x)
    assert got.dtype == torch.float32 and got.shape == (1, K, 64, 64)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
    assert seg.outputs == "logits" and seg.num_classes == K


@pytest.mark.parametrize("kind", ["segformer", "upernet", "beit", "mobilevit", "mobilevitv2", "mobilenet_v2"])
def test_semantic_logits_of_a_non_square_image(kind, saved):
    # 64×96 is a multiple of every divisor: the network sees the image itself, as the library's forward does
    root, model, processor = saved(kind)
    seg = open_model(_entry(root))
    image, x = _image(64, 96, seed=1)
    with torch.no_grad():
        expected = _up(model(pixel_values=_pixel_values(processor, image)).logits, (64, 96))
        got = seg(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_data2vec_reads_its_fixed_size(saved):
    # its head reshapes to the square patch grid of config.image_size (64): every input is resized to it
    root, model, _ = saved("data2vec-vision")
    seg = open_model(_entry(root))
    _, x = _image(48, 80, seed=3)
    with torch.no_grad():
        expected = _up(model(pixel_values=_up(seg.preprocess(x), (64, 64))).logits, (48, 80))
        got = seg(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_smallest_input_side(saved):
    # MobileViTV2's 1/32 stage unfolds 2×2 patches without padding: 64 pixels at least (32 gives it a 1×1 map)
    assert open_model(_entry(saved("mobilevitv2")[0])).min_input_side == 64
    model = saved("mobilevitv2")[1]
    with pytest.raises(RuntimeError):
        model(pixel_values=torch.zeros(1, 3, 32, 32))
    assert open_model(_entry(saved("segformer")[0])).min_input_side == 32


def test_dpt_runs_on_non_square_images(saved):
    # transformers' DPTForSemanticSegmentation lets its neck assume a square patch grid and fails here; the
    # family passes the grid (the same code path the square test above checks against the library)
    root, model, _ = saved("dpt")
    seg = open_model(_entry(root))
    _, x = _image(48, 80)
    with pytest.raises(RuntimeError):
        model(pixel_values=seg.preprocess(x))
    with torch.no_grad():
        out = seg(x)
    assert out.shape == (1, K, 48, 80) and torch.isfinite(out).all()
    assert seg.preprocessing.size_divisor == 16  # twice the patch: the neck's last map halves the grid


@pytest.mark.parametrize("kind", UNIVERSAL)
def test_universal_scores_are_the_library_post_processing(kind, saved):
    root, model, processor = saved(kind)
    seg = open_model(_entry(root))
    assert seg.outputs == "scores"
    for h, w in [(64, 64), (64, 96)]:
        image, x = _image(h, w, seed=2)
        with torch.no_grad():
            outputs = model(pixel_values=_pixel_values(processor, image))
            post = processor.post_process_semantic_segmentation(outputs, target_sizes=[(h, w)],
                                                                return_segmentation_scores=True)[0]
            got = seg(x)
        assert got.shape == (1, K, h, w)
        assert torch.equal(got[0].argmax(0), post["segmentation"])  # every pixel
        scores = post["segmentation_scores"]
        torch.testing.assert_close(got[0].exp(), scores.clamp_min(1e-12), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", list(MODELS))
def test_gradients_reach_the_image(kind, saved):
    root, _, _ = saved(kind)
    seg = open_model(_entry(root))
    _, x = _image()
    x.requires_grad_(True)
    weights = torch.randn(1, K, 1, 1, generator=torch.Generator().manual_seed(0))
    (seg(x) * weights).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# --- (d) taps ------------------------------------------------------------------------------------------------------

def _stages_by_library(kind: str, model, pv: torch.Tensor) -> list[torch.Tensor]:
    """The stage maps, computed with the library's own modules and outputs."""
    with torch.no_grad():
        if kind == "segformer":
            return list(model.segformer(pv, output_hidden_states=True).hidden_states)
        if kind == "upernet":
            return list(model.backbone(pv).feature_maps)
        if kind in ("dpt", "beit", "data2vec-vision"):
            encoder = getattr(model, kind.replace("-", "_"))  # model.dpt, .beit, .data2vec_vision
            hidden = encoder(pv, output_hidden_states=True).hidden_states
            layers = ([hidden[i + 1] for i in model.config.backbone_out_indices] if kind == "dpt"
                      else [hidden[i - 1] for i in model.config.out_indices])
            gh, gw = pv.shape[-2] // 8, pv.shape[-1] // 8
            return [t[:, 1:].transpose(1, 2).reshape(1, -1, gh, gw) for t in layers]  # CLS dropped, on the grid
        if kind in ("mobilevit", "mobilevitv2"):
            return list(getattr(model, kind)(pv, output_hidden_states=True).hidden_states)
        if kind == "mobilenet_v2":
            hidden = model.mobilenet_v2(pv, output_hidden_states=True).hidden_states
            return [hidden[i] for i in (1, 4, 11, 15)]  # the last block at 1/4, 1/8, 1/16, 1/32
        return list(model(pixel_values=pv, output_hidden_states=True).encoder_hidden_states)


# kind → (stage map shapes (C, h, w) for a 64×64 input, the fused map's shape), from the tiny configs
TAP_SHAPES = {
    "segformer": ([(8, 16, 16), (16, 8, 8), (24, 4, 4), (32, 2, 2)], (16, 16, 16)),
    "upernet": ([(8, 16, 16), (16, 8, 8), (24, 4, 4), (32, 2, 2)], (16, 16, 16)),
    "dpt": ([(16, 8, 8)] * 4, (16, 64, 64)),
    "beit": ([(16, 8, 8)] * 4, (16, 32, 32)),
    "data2vec-vision": ([(16, 8, 8)] * 4, (16, 32, 32)),
    "mobilevit": ([(8, 32, 32), (16, 16, 16), (16, 8, 8), (24, 4, 4), (32, 2, 2)], (16, 2, 2)),
    "mobilevitv2": ([(16, 32, 32), (32, 16, 16), (64, 8, 8), (96, 4, 4), (128, 2, 2)], (16, 2, 2)),
    "mobilenet_v2": ([(8, 16, 16), (8, 8, 8), (24, 4, 4), (80, 2, 2)], (256, 2, 2)),
    "mask2former": ([(8, 16, 16), (16, 8, 8), (32, 4, 4), (64, 2, 2)], (32, 16, 16)),
    "maskformer": ([(8, 16, 16), (16, 8, 8), (24, 4, 4), (32, 2, 2)], (32, 16, 16)),
}


@pytest.mark.parametrize("kind", list(MODELS))
def test_taps_are_the_library_features(kind, saved):
    root, model, processor = saved(kind)
    seg = open_model(_entry(root))
    shapes, fused_shape = TAP_SHAPES[kind]
    stages = [f"stage{i + 1}" for i in range(len(shapes))]
    assert seg.taps == (*stages, "fused", "logits")
    image, x = _image()
    pv = _pixel_values(processor, image)
    with torch.no_grad():
        got = seg.features(x)
    assert [tuple(got[s].shape[1:]) for s in stages] == shapes
    assert tuple(got["fused"].shape[1:]) == fused_shape
    for mine, theirs in zip([got[s] for s in stages], _stages_by_library(kind, model, pv), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())
    with torch.no_grad():  # the fused map is what the head's classifier turns into the library's logits
        if kind in UNIVERSAL:
            expected = model(pixel_values=pv).pixel_decoder_last_hidden_state
            torch.testing.assert_close(got["fused"], expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
        else:
            classifier = model.head.head[4:] if kind == "dpt" else (  # DPT: its classifier, then its upsampling
                model.decode_head.classifier if hasattr(model, "decode_head") else model.segmentation_head.classifier)
            logits = model(pixel_values=pv).logits
            mine = _up(classifier(got["fused"]), logits.shape[-2:])
            torch.testing.assert_close(mine, logits, rtol=1e-5, atol=1e-5 * logits.abs().max().item())
    torch.testing.assert_close(_up(got["logits"], (64, 64)), seg(x).detach())


@pytest.mark.parametrize("kind", ["segformer", "dpt", "mask2former"])
def test_taps_keep_the_graph_to_the_image(kind, saved):
    root, _, _ = saved(kind)
    seg = open_model(_entry(root))
    _, x = _image()
    x.requires_grad_(True)
    features = seg.features(x)
    g = torch.Generator().manual_seed(0)
    for name, f in features.items():
        centre = f[0, :, f.shape[2] // 2, f.shape[3] // 2]
        (grad,) = torch.autograd.grad((centre * torch.randn(centre.shape, generator=g)).sum(), x, retain_graph=True)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_entry_taps_by_module_name(saved):
    root, model, processor = saved("segformer")
    seg = open_model(_entry(root, taps={"classifier_out": "decode_head.classifier",
                                        "patch1": "segformer.stages.0.patch_embeddings.proj:input"}))
    assert seg.taps[-3:] == ("classifier_out", "patch1", "logits")
    image, x = _image()
    pv = _pixel_values(processor, image)
    got = seg.features(x, ["classifier_out", "patch1"])
    torch.testing.assert_close(got["classifier_out"], model(pixel_values=pv).logits, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got["patch1"], pv, rtol=0, atol=1e-6)  # the first module sees the network input


def test_a_module_run_twice_keeps_its_outputs():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.conv(self.conv(x))

    model, x = Twice(), torch.randn(1, 2, 3, 3)
    found, out = run_tapped(model, {"t": "conv", "i": "conv:input"}, ["t", "i"], lambda: model(x))
    with torch.no_grad():
        assert torch.equal(out, model.conv(model.conv(x)))  # the hook changed nothing
        assert torch.equal(found["t"], model.conv(x)) and torch.equal(found["i"], x)  # the first call's


# --- (e) classes, description, overrides ----------------------------------------------------------------------------

def test_class_names_come_from_id2label(saved):
    named = open_model(_entry(saved("segformer")[0]))
    assert named.class_names == tuple(NAMES)
    assert open_model(_entry(saved("upernet")[0])).class_names is None  # transformers' LABEL_0… placeholders
    mapped = open_model(_entry(saved("segformer")[0], class_map={"road": 1, "building": 0}), num_classes=2)
    _, x = _image()
    with torch.no_grad():
        logits = named(x)
        torch.testing.assert_close(mapped(x), logits[:, [2, 0]])  # dataset class 0 ← building, 1 ← road


def test_description(saved):
    root = saved("upernet")[0]
    assert open_model(_entry(root)).describe() == {
        "family": "transformers", "path": str(root), "model_type": "upernet",
        "architectures": ["UperNetForSemanticSegmentation"]}


def test_preprocess_fields_of_the_entry_override_the_file(saved):
    root = saved("segformer")[0]
    seg = open_model(_entry(root, preprocess={"mean": [120, 110, 100], "std": [60, 50, 40], "scale": 255,
                                              "channels": "BGR", "size_divisor": 8}))
    _, x = _image(40, 40)
    rgb = x * 255
    expected = (rgb.flip(1) - torch.tensor([120.0, 110, 100]).view(1, 3, 1, 1)) / torch.tensor(
        [60.0, 50, 40]).view(1, 3, 1, 1)
    torch.testing.assert_close(seg.preprocess(x), expected)
    assert seg.preprocessing.size_divisor == 8


@pytest.mark.parametrize("kind", ["dpt", "mobilevit"])
def test_without_a_preprocessor_file_the_processor_class_defaults(kind, tmp_path):
    torch.manual_seed(0)
    MODELS[kind][0]().save_pretrained(tmp_path)
    seg = open_model(_entry(tmp_path))
    image, x = _image(32, 48)
    defaults = getattr(T, MODELS[kind][1])()  # DPT: mean/std 0.5; MobileViT: no normalisation, BGR
    torch.testing.assert_close(seg.preprocess(x), _pixel_values(defaults, image), rtol=0, atol=1e-6)


def test_weights_in_a_pytorch_bin_file(saved, tmp_path):
    _, model, _ = saved("segformer")
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    seg = open_model(_entry(tmp_path))
    _, x = _image()
    with torch.no_grad():
        torch.testing.assert_close(seg.network(seg.preprocess(x)), model(pixel_values=seg.preprocess(x)).logits)


# --- OneFormer: a text task input from its tokenizer ---------------------------------------------------------------

def _clip_tokenizer():
    """A tiny CLIP BPE tokenizer that spells the task prompts word by word."""
    words = ["the", "task", "is", "semantic", "panoptic", "instance"]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in sorted(set("".join(words))):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges = []
    for word in words:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            parts = [parts[0] + parts[1], *parts[2:]]
            vocab.setdefault(parts[0], len(vocab))
    return T.CLIPTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)))


def test_oneformer_semantic_task(tmp_path):
    backbone = T.SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                            window_size=4, **_four())
    tokenizer = _clip_tokenizer()
    config = T.OneFormerConfig(
        backbone_config=backbone, num_labels=K, conv_dim=32, mask_dim=32, hidden_dim=32, encoder_feedforward_dim=32,
        dim_feedforward=32, decoder_layers=2, encoder_layers=1, num_queries=6, num_attention_heads=2, task_seq_len=12,
        text_encoder_context_length=12, text_encoder_width=32, text_encoder_num_layers=1, max_seq_len=12,
        text_encoder_vocab_size=len(tokenizer), text_encoder_proj_layers=1, common_stride=4, is_training=False)
    torch.manual_seed(0)
    model = randomize_(T.OneFormerForUniversalSegmentation(config)).eval()
    model.save_pretrained(tmp_path)
    processor = T.OneFormerProcessor(image_processor=T.OneFormerImageProcessorPil(image_mean=MEAN, image_std=STD),
                                     tokenizer=tokenizer, task_seq_length=12, max_seq_length=12)
    processor.save_pretrained(tmp_path)
    seg = open_model(_entry(tmp_path))
    assert seg.outputs == "scores" and seg.taps[-2:] == ("fused", "logits")
    image, x = _image()
    inputs = processor(images=image, task_inputs=["semantic"], do_resize=False, do_pad=False, return_tensors="pt")
    assert torch.equal(seg.task_inputs, inputs["task_inputs"])
    torch.testing.assert_close(seg.preprocess(x), inputs["pixel_values"], rtol=0, atol=1e-6)
    with torch.no_grad():
        outputs = model(pixel_values=inputs["pixel_values"], task_inputs=inputs["task_inputs"])
        post = processor.post_process_semantic_segmentation(outputs, target_sizes=[(64, 64)],
                                                            return_segmentation_scores=True)[0]
        got = seg(x)
    assert torch.equal(got[0].argmax(0), post["segmentation"])
    torch.testing.assert_close(got[0].exp(), post["segmentation_scores"].clamp_min(1e-12), rtol=1e-4, atol=1e-6)


# --- (f) bad directories and entries: one line each ------------------------------------------------------------------

def _copy(saved_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in saved_dir.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


def _edit_config(root: Path, **changes) -> None:
    data = json.loads((root / "config.json").read_text())
    data.update(changes)
    (root / "config.json").write_text(json.dumps(data))


def _bad(case: str, good: Path, tmp: Path) -> tuple[Path, dict, tuple[str, ...]]:
    """(the directory, extra entry fields, the message's expected parts) of one bad case."""
    root = _copy(good, tmp / "m")
    extra: dict = {}
    if case == "missing":
        return tmp / "nowhere", extra, ("nowhere", "is not a directory", "save_pretrained")
    if case == "a file":
        return root / "config.json", extra, ("config.json", "is not a directory")
    if case == "no config":
        (root / "config.json").unlink()
        return root, extra, ("has no config.json", "save_pretrained")
    if case == "config not JSON":
        (root / "config.json").write_text("{not json")
        return root, extra, ("config.json is not readable JSON",)
    if case == "no model_type":
        _edit_config(root, model_type=None)
        return root, extra, ("names no model_type",)
    if case == "not segmentation":
        _edit_config(root, model_type="bert")
        return root, extra, ("'bert' is not a segmentation model", "upernet", "mask2former")
    if case == "universal unsupported":
        _edit_config(root, model_type="detr")
        return root, extra, ("'detr' is a universal segmentation model", "does not post-process")
    if case == "no weights":
        (root / "model.safetensors").unlink()
        return root, extra, ("has no weights", "model.safetensors", "save_pretrained")
    if case == "truncated weights":
        data = (root / "model.safetensors").read_bytes()
        (root / "model.safetensors").write_bytes(data[: len(data) // 2])
        return root, extra, ("transformers could not load",)
    if case == "other class count":
        _edit_config(root, id2label={str(i): f"c{i}" for i in range(7)}, label2id={f"c{i}": i for i in range(7)})
        return root, extra, ("do not fit its config.json", "mismatched keys", "decode_head.classifier.weight")
    if case == "other depth":
        _edit_config(root, depths=[2, 1, 1, 1])
        return root, extra, ("do not fit its config.json", "missing keys", "segformer.stages.0.blocks.1")
    if case == "config field of a wrong type":
        _edit_config(root, hidden_sizes="wide")
        return root, extra, ("transformers could not load", "hidden_sizes")
    if case == "processor not JSON":
        (root / "preprocessor_config.json").write_text("[1, ")
        return root, extra, ("preprocessor_config.json is not readable JSON", "fix or delete it")
    if case == "processor mean of two":
        data = json.loads((root / "preprocessor_config.json").read_text())
        (root / "preprocessor_config.json").write_text(json.dumps({**data, "image_mean": [0.5, 0.5]}))
        return root, extra, ("image_mean must be a number or 3 numbers",)
    if case == "processor zero std":
        data = json.loads((root / "preprocessor_config.json").read_text())
        (root / "preprocessor_config.json").write_text(json.dumps({**data, "image_std": [0.2, 0, 0.2]}))
        return root, extra, ("std must be positive",)
    if case == "unknown preprocess field":
        return root, {"preprocess": {"colour": "RGB"}}, ("preprocess", "colour", "allowed: mean, std")
    if case == "tap of no module":
        return root, {"taps": {"x": "decode_head.nothing"}}, ("taps.x", "no module 'decode_head.nothing'")
    if case == "tap named like a built-in":
        return root, {"taps": {"fused": "decode_head"}}, ("taps", "fused already name")
    raise AssertionError(case)


BAD = ["missing", "a file", "no config", "config not JSON", "no model_type", "not segmentation",
       "universal unsupported", "no weights", "truncated weights", "other class count", "other depth",
       "config field of a wrong type", "processor not JSON", "processor mean of two", "processor zero std",
       "unknown preprocess field", "tap of no module", "tap named like a built-in"]


@pytest.mark.parametrize("case", BAD)
def test_bad_directory_or_entry_is_one_line(case, saved, tmp_path):
    root, extra, parts = _bad(case, saved("segformer")[0], tmp_path)
    with pytest.raises(UserError) as excinfo:
        open_model(_entry(root, **extra), where="models[0]")
    one_line_error(excinfo, "models[0] (m)", *parts)
    if case in ("no weights", "truncated weights", "other class count", "other depth"):
        assert isinstance(excinfo.value, CheckpointError)


@pytest.mark.parametrize("case", ["missing", "no config", "not segmentation", "no weights", "processor not JSON"])
def test_check_without_loading_finds_the_same_mistakes(case, saved, tmp_path):
    root, extra, parts = _bad(case, saved("segformer")[0], tmp_path)
    entry = entry_from(_entry(root, **extra))
    with pytest.raises(UserError) as excinfo:
        check_transformers(entry, "models[0]")
    one_line_error(excinfo, "models[0] (m)", *parts)


def test_check_without_loading_passes_a_good_directory(saved):
    assert check_transformers(entry_from(_entry(saved("mask2former")[0])), "models[0]") == "mask2former"


def test_class_count_differs_from_the_dataset(saved):
    with pytest.raises(UserError) as excinfo:
        open_model(_entry(saved("segformer")[0]), num_classes=19)
    one_line_error(excinfo, "5 classes", "19", "class_map")


def test_oneformer_without_a_tokenizer(tmp_path, saved):
    _copy(saved("mask2former")[0], tmp_path / "m")
    root = tmp_path / "m"
    # a OneFormer directory needs the tokenizer that writes its task input; a Mask2Former's weights will not do,
    # but the tokenizer is looked for first
    config = T.OneFormerConfig(backbone_config=T.SwinConfig(**_four()), num_labels=K)
    config.save_pretrained(root)
    with pytest.raises(UserError) as excinfo:
        open_model(_entry(root))
    one_line_error(excinfo, "OneFormer needs its tokenizer", "OneFormerProcessor")


def test_without_transformers_installed(monkeypatch, saved):
    root = saved("segformer")[0]
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError
    with pytest.raises(UserError) as excinfo:
        open_model(_entry(root))
    one_line_error(excinfo, "needs the transformers package", 'pip install "segformer-bench[transformers]"')
