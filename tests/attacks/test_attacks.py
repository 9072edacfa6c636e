"""The attacks against the ``cospgd`` package's own steps and loss scalings (REFERENCE §10), a model that is
linear per pixel (the gradient by hand), and the invariants every attack must keep."""

import cospgd
import pytest
import torch
import torch.nn.functional as F

import segformer_bench as sb
from segformer_bench.attacks import attack, attack_loss, default_alpha
from segformer_bench.errors import UserError
from segformer_bench.models.segmenter import as_segmenter

ref = cospgd.functions

K = 5


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return as_segmenter(sb.build_model("b0", K).eval())


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 3, 32, 48), generator=g).float() / 255
    labels = torch.randint(0, K, (2, 32, 48), generator=g)
    labels[:, :4] = 255  # some ignored pixels
    return images, labels


def cospgd_attack(model, x0, labels, method, norm, eps, alpha, steps, targeted=False):
    """The attack loop of the cospgd package's README, driving its own functions."""
    x = x0.clone()
    for t in range(steps):
        x.requires_grad_(True)
        logits = model(x)
        ce = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
        if method == "pgd":
            loss = ce.mean()
        elif method == "segpgd":
            loss = ref.segpgd_scale(logits, labels, ce, t, steps, targeted=targeted)
        else:
            loss = ref.cospgd_scale(logits, labels, ce, num_classes=K, targeted=targeted).mean()
        (grad,) = torch.autograd.grad(loss, x)
        take = ref.step_inf if norm == "linf" else ref.step_l2
        x = take(x, eps, grad, x0, alpha, targeted=targeted)
    return x.detach()


@pytest.mark.parametrize("norm, eps", [("linf", 8 / 255), ("l2", 64 / 255)])
@pytest.mark.parametrize("method", ["pgd", "segpgd", "cospgd"])
def test_step_for_step_equal_to_the_cospgd_package(model, batch, method, norm, eps):
    images, labels = batch
    alpha = default_alpha(eps, 4)
    ours = attack(model, images, labels, method=method, norm=norm, eps=eps, steps=4, random_start=False)
    theirs = cospgd_attack(model, images, labels, method, norm, eps, alpha, 4)
    assert (ours - theirs).abs().max() <= 1e-6


def test_targeted_segpgd_and_cospgd_equal_the_package(model, batch):
    images, labels = batch
    target = torch.zeros_like(labels)
    for method in ("segpgd", "cospgd"):
        ours = attack(model, images, target, method=method, eps=4 / 255, steps=3, random_start=False, targeted=True)
        theirs = cospgd_attack(model, images, target, method, "linf", 4 / 255, default_alpha(4 / 255, 3), 3,
                               targeted=True)
        assert (ours - theirs).abs().max() <= 1e-6


def test_one_linf_step_on_a_per_pixel_linear_model_is_the_analytic_sign():
    torch.manual_seed(2)
    W = torch.randn(K, 3)
    b = torch.randn(K)
    model = lambda x: torch.einsum("kc,bchw->bkhw", W, x) + b.view(1, K, 1, 1)  # noqa: E731
    x0 = torch.rand(1, 3, 6, 7) * 0.5 + 0.25
    labels = torch.randint(0, K, (1, 6, 7))
    eps, alpha = 0.1, 0.03
    adv = attack(model, x0, labels, eps=eps, alpha=alpha, steps=1, random_start=False)
    p = (torch.einsum("kc,bchw->bkhw", W, x0) + b.view(1, K, 1, 1)).softmax(1)
    grad = torch.einsum("kc,bkhw->bchw", W, p - F.one_hot(labels, K).permute(0, 3, 1, 2).float())  # ∂CE/∂x
    torch.testing.assert_close(adv, x0 + alpha * grad.sign(), rtol=0, atol=1e-7)


@pytest.mark.parametrize("norm, eps", [("linf", 8 / 255), ("l2", 0.5), ("linf", 1 / 255), ("l2", 64 / 255)])
def test_the_budget_and_the_image_range_hold_exactly(model, batch, norm, eps):
    images, labels = batch
    for method in ("pgd", "segpgd", "cospgd"):
        for quantize in (False, True):
            adv = attack(model, images, labels, method=method, norm=norm, eps=eps, steps=3, seed=4,
                         ids=["a", "b"], quantize=quantize)
            delta = adv - images
            size = delta.abs().flatten(1).amax(1) if norm == "linf" else delta.flatten(1).norm(dim=1)
            assert bool((size <= eps).all()), (method, quantize, size, eps)
            assert adv.min() >= 0 and adv.max() <= 1
            if quantize:
                assert torch.allclose(adv * 255, torch.round(adv * 255), atol=1e-3)


def test_eps_zero_is_the_clean_image(model, batch):
    images, labels = batch
    assert torch.equal(attack(model, images, labels, eps=0.0), images)


def test_same_seed_same_images_whatever_the_batch(model, batch):
    images, labels = batch
    both = attack(model, images, labels, method="segpgd", eps=4 / 255, steps=2, seed=7, ids=["a", "b"])
    first = attack(model, images[:1], labels[:1], method="segpgd", eps=4 / 255, steps=2, seed=7, ids=["a"])
    second = attack(model, images[1:], labels[1:], method="segpgd", eps=4 / 255, steps=2, seed=7, ids=["b"])
    torch.testing.assert_close(both, torch.cat([first, second]), rtol=0, atol=1e-6)
    other = attack(model, images[:1], labels[:1], method="segpgd", eps=4 / 255, steps=2, seed=8, ids=["a"])
    assert not torch.equal(other, first)


def test_no_parameter_gradient_is_kept_and_the_mode_is_restored(batch):
    torch.manual_seed(0)
    module = sb.build_model("b0", K)
    module.train()
    seg = as_segmenter(module)
    images, labels = batch
    attack(seg, images, labels, eps=2 / 255, steps=1)
    assert all(p.grad is None for p in module.parameters())
    assert module.training


def test_more_steps_never_raise_the_mean_loss_on_average(model, batch):
    """More PGD steps reach a higher (never lower, on average over seeds) loss than fewer."""
    images, labels = batch
    losses = {}
    for steps in (1, 5):
        values = []
        for seed in range(3):
            adv = attack(model, images, labels, eps=8 / 255, steps=steps, seed=seed, alpha=2 / 255)
            with torch.no_grad():
                values.append(float(attack_loss("pgd", model(adv), labels, 0, 1)))
        losses[steps] = sum(values) / len(values)
    assert losses[5] >= losses[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "fgsm"}, "unknown attack method 'fgsm'"),
    ({"norm": "l1"}, "unknown attack norm 'l1'"),
    ({"eps": -1.0}, "eps must be a finite number"),
    ({"steps": 0}, "steps must be a whole number"),
    ({"alpha": 0.0}, "alpha must be a positive number"),
])
def test_bad_arguments_are_one_line(model, batch, kwargs, message):
    images, labels = batch
    with pytest.raises(UserError, match=message):
        attack(model, images, labels, **kwargs)
