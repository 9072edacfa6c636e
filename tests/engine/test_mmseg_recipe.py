"""mmseg's DeepLabV3+ recipe as a training preset, against mmseg's config values and a hand-written SGD loop.

* the preset: the values of mmseg's ``deeplabv3plus_r101b-d8_512x1024_80k_cityscapes`` (``schedule_80k.py``:
  SGD lr 0.01, momentum 0.9, weight decay 5e-4, poly power 0.9, min_lr 1e-4; ``cityscapes.py``: 512×1024 crops,
  2 images per GPU on 4 GPUs; the FCN auxiliary head's loss_weight 0.4), written out here;
* the optimisation: two steps of ``train`` against ``torch.optim.SGD`` on one group of every parameter, with the
  loss written here as mmseg sums it: CE(decode head) + 0.4 · CE(auxiliary head), each upsampled to the labels
  and averaged over all pixels, and the lr of mmcv's PolyLrUpdaterHook computed by hand;
* run directories made before the new fields existed: a saved config without them is unchanged.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from segformer_bench.config import to_mapping
from segformer_bench.data import build_dataset
from segformer_bench.data.transforms import TrainAugment
from segformer_bench.engine.train import (
    TRAIN_PRESETS,
    TrainSamples,
    config_changed,
    lr_factor,
    param_groups,
    prepare_run_dir,
    train,
)
from segformer_bench.errors import UserError
from segformer_bench.models.registry import build_model

MMSEG = TRAIN_PRESETS["cityscapes-deeplab-mmseg"]

# A DeepLabV3+ small enough for two CPU steps: R50 (the smallest depth) with narrow heads, no dropout (so the
# hand-written loop needs no random numbers), on 64×64 SynthCity crops.
TINY = dataclasses.replace(
    MMSEG, model="deeplabv3plus-r50", model_options={"channels": 16, "c1_channels": 8, "dropout": 0.0},
    dataset="synthcity", dataset_options={"size": [64, 128], "length": 4}, crop=(64, 64), img_scale=(128, 64),
    iters=2, batch_size=2, workers=0, log_interval=1, checkpoint_interval=2, eval_interval=0, eval_limit=1,
    device="cpu",
)

# TrainConfig's fields before the optimizer, momentum, decay_norms and aux_loss_weight fields existed: what
# train_config.json of an existing run directory holds.
OLD_FIELDS = {
    "model", "model_options", "pretrained", "dataset", "data_root", "dataset_options", "train_split", "val_split",
    "crop", "img_scale", "ratio_range", "cat_max_ratio", "flip_prob", "photometric", "iters", "batch_size",
    "grad_accum", "lr", "betas", "weight_decay", "head_lr_mult", "warmup_iters", "warmup_ratio", "power", "min_lr",
    "amp", "seed", "workers", "log_interval", "checkpoint_interval", "eval_interval", "eval_preset", "eval_limit",
    "device",
}


def test_preset_is_mmsegs_recipe():
    expected = {"model": "deeplabv3plus-r101", "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4,
                "decay_norms": True, "head_lr_mult": 1.0, "warmup_iters": 0, "power": 0.9, "min_lr": 1e-4,
                "iters": 80_000, "batch_size": 8, "crop": (512, 1024), "img_scale": (2048, 1024),
                "ratio_range": (0.5, 2.0), "cat_max_ratio": 0.75, "flip_prob": 0.5, "photometric": True,
                "aux_loss_weight": 0.4, "dataset": "cityscapes", "eval_preset": "whole"}
    assert {k: getattr(MMSEG, k) for k in expected} == expected
    # mmcv's PolyLrUpdaterHook(power=0.9, min_lr=1e-4, by_epoch=False): (base - min) · (1 - it/max)^0.9 + min
    for it in (0, 1, 20_000, 40_000, 79_999):
        by_hand = (0.01 - 1e-4) * (1 - it / 80_000) ** 0.9 + 1e-4
        assert 0.01 * lr_factor(MMSEG, it) == pytest.approx(by_hand, rel=1e-12)


def test_mmseg_groups_decay_every_parameter_once_the_segformer_recipe_spares_the_norms():
    model = build_model("deeplabv3plus-r50", 4, channels=16, c1_channels=8, aux_head=True)
    groups = param_groups(model, MMSEG)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each once, the auxiliary head included
    assert all(g["lr"] == 0.01 and g["weight_decay"] == 5e-4 for g in groups)
    segformer_recipe = param_groups(model, TRAIN_PRESETS["cityscapes"])
    spared = {id(p) for g in segformer_recipe if g["weight_decay"] == 0 for p in g["params"]}
    assert spared == {id(p) for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)
                      for p in m.parameters()}
    assert sum(len(g["params"]) for g in segformer_recipe) == len(list(model.parameters()))


def test_two_sgd_steps_match_torch_sgd_with_the_auxiliary_loss(tmp_path):
    final = train(TINY, tmp_path / "run", progress=False, log=lambda _: None)
    trained = torch.load(final, map_location="cpu", weights_only=True)["model"]
    assert any(k.startswith("aux_head.") for k in trained)

    dataset = build_dataset("synthcity", "train", None, **TINY.dataset_options)
    augment = TrainAugment(crop=TINY.crop, img_scale=TINY.img_scale, ratio_range=TINY.ratio_range,
                           cat_max_ratio=TINY.cat_max_ratio, flip_prob=TINY.flip_prob, photometric=TINY.photometric)
    samples = TrainSamples(dataset, augment, TINY.seed)  # the run's data stream: samples 2·it and 2·it + 1
    torch.manual_seed(TINY.seed)
    model = build_model("deeplabv3plus-r50", dataset.info.num_classes, channels=16, c1_channels=8, dropout=0.0,
                        aux_head=True).train()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # averaged over all pixels, ignored too
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(logits, labels, ignore_index=255, reduction="sum") / labels.numel()

    for it in range(2):
        for group in sgd.param_groups:
            group["lr"] = (0.01 - 1e-4) * (1 - it / 2) ** 0.9 + 1e-4
        images, labels = (torch.stack(t) for t in zip(*(samples[s] for s in (2 * it, 2 * it + 1)), strict=True))
        features = model.encoder.forward_features(images)
        main = model.head(features)
        aux = model.aux_head.classifier(model.aux_head.conv(features[2]))  # FCNHead on layer3
        loss = ce(main, labels) + 0.4 * ce(aux, labels)
        sgd.zero_grad()
        loss.backward()
        sgd.step()

    expected = model.state_dict()
    assert set(trained) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(trained[k], v, rtol=0, atol=2e-7, msg=k)


def test_an_auxiliary_loss_needs_an_auxiliary_head(tmp_path):
    for change, message in (
        ({"model": "b0", "model_options": {}}, "needs a model with an auxiliary head"),
        ({"aux_loss_weight": 0.0, "model_options": {"aux_head": True}}, "only with aux_loss_weight > 0"),
        ({"model_options": {"aux_head": False}}, "aux_head: false removes"),
    ):
        with pytest.raises(UserError, match=message):
            train(dataclasses.replace(TINY, **change), tmp_path / "run", progress=False, log=lambda _: None)
        assert not (tmp_path / "run").exists()


def test_a_run_saved_before_the_new_fields_is_unchanged(tmp_path):
    config = TRAIN_PRESETS["synthcity"]
    old = {k: v for k, v in to_mapping(config).items() if k in OLD_FIELDS}
    assert set(old) == OLD_FIELDS
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "train_config.json").write_text(json.dumps(old))
    (run / "model.pt").write_bytes(b"trained")  # the run holds training: a changed config would be refused
    assert config_changed(run, config) == []
    prepare_run_dir(run, config, restart=False)
    assert (run / "model.pt").read_bytes() == b"trained"
    (run / "train_config.json").write_text(json.dumps(old))
    assert config_changed(run, dataclasses.replace(config, optimizer="sgd")) == ["optimizer"]
    assert config_changed(run, dataclasses.replace(config, model="deeplabv3plus-r50", aux_loss_weight=0.4)) == [
        "aux_loss_weight", "model"]
    with pytest.raises(UserError, match=r"different config \(changed: decay_norms\)"):
        prepare_run_dir(run, dataclasses.replace(config, decay_norms=True), restart=False)


def test_shipped_suites_follow_the_released_configs():
    """cityscapes_c and erf use mmseg's released r101-d8 file (tested whole-image, as its test_cfg); the two
    resolution-shift suites slide the 768 window with stride 768 (the released 768 config's test_cfg) and differ
    only in the initialisation, the same for both variants within each."""
    import yaml

    from segformer_bench.bench.suite import SUITES_DIR

    def read(name: str) -> dict:
        return yaml.safe_load((SUITES_DIR / f"{name}.yaml").read_text())

    released = "../checkpoints/deeplabv3plus_r101-d8_512x1024_80k_cityscapes_20200606_114143-068fcfe9.pth"
    for name in ("cityscapes_c", "erf"):
        (deeplab,) = [m for m in read(name)["models"] if m["variant"] == "deeplabv3plus-r101"]
        assert deeplab["checkpoint"] == released and "train" not in deeplab
    (deeplab,) = [m for m in read("cityscapes_c")["models"] if m["variant"] == "deeplabv3plus-r101"]
    assert deeplab["eval"] == {"mode": "whole"}

    pretrained, scratch = read("resolution_shift"), read("resolution_shift_scratch")
    for suite in (pretrained, scratch):
        (slide,) = [t for t in suite["resolution"]["tests"] if t["eval"]["overrides"].get("crop") == [768, 768]]
        assert slide["eval"]["overrides"]["stride"] == [768, 768]
    assert [m["train"]["overrides"]["pretrained"] for m in pretrained["models"]] == ["../checkpoints/mit_b2.pth"] * 2
    assert all("pretrained" not in m["train"]["overrides"] for m in scratch["models"])
    for with_file, without in zip(pretrained["models"], scratch["models"], strict=True):
        overrides = {k: v for k, v in with_file["train"]["overrides"].items() if k != "pretrained"}
        assert (without["name"], without["variant"], without["train"]["overrides"]) == (
            with_file["name"], with_file["variant"], overrides)
    assert scratch["resolution"] == pretrained["resolution"]
