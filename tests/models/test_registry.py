"""The model protocol and the table of families: every family offers the same members, and the registry's
look-ups agree with the families' own definitions."""

from __future__ import annotations

import pytest
import torch

import segformer_bench as sb
from segformer_bench.errors import UserError
from segformer_bench.models.base import TAPS, normalize
from segformer_bench.models.registry import FAMILIES, config_from_dict, family_of, variant_name, variant_of

SMALL = {"segformer": ("b0", {}), "deeplabv3plus": ("deeplabv3plus-r50", {"channels": 16, "output_stride": 16})}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_offers_the_protocol(name):
    variant, options = SMALL[name]
    torch.manual_seed(0)
    model = sb.build_model(variant, 5, **options).eval()
    family = FAMILIES[name]
    assert type(model) is family.model and model.family == name and family_of(variant) is family
    assert model.num_classes == 5 == model.config.num_classes and model.class_names is None
    assert model.TAPS == TAPS and isinstance(model.display_name, str) and model.min_train_batch >= 1
    images = torch.randint(0, 256, (2, 3, 64, 80), dtype=torch.uint8)
    x = model.preprocess(images)
    assert torch.equal(x, normalize(images))
    with torch.no_grad():
        feats = model.features(x)
        logits = model(x)  # eval mode: the classifier on the fused feature, as `features` computes it
        stages = model.encoder.forward_features(x)
    assert list(feats) == list(TAPS)
    assert all(torch.equal(feats[f"stage{i + 1}"], s) for i, s in enumerate(stages))
    assert torch.equal(feats["logits"], logits) and logits.shape == (2, 5, 16, 20)
    assert list(model.features(x, ("logits", "stage2"))) == ["logits", "stage2"]
    with pytest.raises(ValueError, match="unknown feature tap"):
        model.features(x, ("stage5",))
    assert 1 <= model.min_input_side <= 64


@pytest.mark.parametrize("name", list(FAMILIES))
def test_configs_round_trip_through_the_registry(name):
    variant, options = SMALL[name]
    model = sb.build_model(variant, 7, **options)
    assert config_from_dict(model.config.to_dict()) == model.config
    assert variant_of(model.config) == (variant if not options else None)
    assert variant_of(sb.build_model(variant, 7).config) == variant_name(variant) == variant
    with pytest.raises(UserError, match="unknown .*field"):
        config_from_dict({**model.config.to_dict(), "widht": 3})


def test_unknown_variants_and_arches_are_one_line_errors():
    with pytest.raises(UserError, match=r"unknown model variant 'b9': choose one of b0, .*b5 \(SegFormer\) or "
                                        r"deeplabv3plus-r50, deeplabv3plus-r101 \(the DeepLabV3\+ baseline\)"):
        family_of("b9")
    with pytest.raises(UserError, match="unknown model arch 'unet'"):
        config_from_dict({"arch": "unet"})
