"""White-box adversarial attacks on segmentation models: PGD, SegPGD and CosPGD under L∞ or L2 budgets.

``attack(model, images, labels, ...)`` attacks float RGB images on the 0–1 scale through a model that takes them
so (a ``models.segmenter.Segmenter``: its own normalisation inside, logits at the input size out), by the
conventions of the public implementations (REFERENCE §10; the ``cospgd`` package 0.1.3 is the test oracle):

* the loss is the per-pixel cross-entropy (labels 255 ignored: their loss is 0), averaged over all pixels —
  ``pgd``; ``segpgd`` (Gu et al., ECCV 2022) weighs correctly classified pixels by 1 − λ_t and the others by λ_t,
  λ_t = t / (2T) at step t = 0…T−1, summed over pixels and divided by H·W; ``cospgd`` (Agnihotri et al., ICML
  2024) weighs each pixel by the cosine similarity of the detached softmax and the one-hot label, then averages
  (the reference code clamps label 255 to the last class for the one-hot; since an ignored pixel's loss is 0, the
  weight there does not matter, and this code masks it). Targeted attacks descend instead (SegPGD's weights swap,
  CosPGD's become 1 − cos), ``labels`` being the target;
* L∞ step: x ← x + α·sign(∇), then δ = clip(x − x0, −ε, ε) and x = clip(x0 + δ, 0, 1); random start
  δ ~ U(−ε, ε). L2 step: x ← x + α·∇/max(‖∇‖₂, 10⁻¹²) per image, δ ← δ / max(‖δ‖₂ / ε, 1), clip to [0, 1];
  random start: U(−1, 1) noise scaled to norm ε;
* the step size α defaults to 2.5·ε / steps (Madry et al.'s rule: enough to cross the ball in the steps given);
* random starts come from one generator per image seeded by ``derive_seed(seed, image id, attack, ε)``, so the
  adversarial images do not depend on batch composition, order or sharding; no rounding unless
  ``quantize=True``, which rounds the final perturbation to the nearest 1/255 and, where that would leave the
  budget, toward zero (images on the 1/255 grid stay on it, inside the budget and inside [0, 1]).

The model runs in eval mode; gradients are taken with respect to the input only (``torch.autograd.grad``: no
parameter gradient is computed or kept), in float32 unless `autocast` names a lower precision for the forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from ..errors import UserError

METHODS: tuple[str, ...] = ("pgd", "segpgd", "cospgd")
NORMS: tuple[str, ...] = ("linf", "l2")
IGNORE_INDEX = 255


def default_alpha(eps: float, steps: int) -> float:
    """The step size when none is given: 2.5·ε / steps."""
    return 2.5 * eps / steps


def pixel_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy (B, H, W) of float32 logits (B, K, H, W); labels 255 give 0."""
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="none")


def attack_loss(method: str, logits: torch.Tensor, labels: torch.Tensor, step: int, steps: int,
                targeted: bool = False) -> torch.Tensor:
    """The scalar loss whose gradient `method` follows at step `step` of `steps` (module docstring)."""
    ce = pixel_loss(logits, labels)
    if method == "pgd":
        return ce.mean()
    if method == "segpgd":
        lam = step / (2 * steps)
        correct = logits.argmax(dim=1) == labels
        weight = torch.where(correct, lam, 1 - lam) if targeted else torch.where(correct, 1 - lam, lam)
        return (weight * ce).sum() / (logits.shape[-2] * logits.shape[-1])
    if method == "cospgd":
        K = logits.shape[1]
        valid = labels != IGNORE_INDEX
        one_hot = F.one_hot(torch.where(valid, labels, 0), K).permute(0, 3, 1, 2).to(logits.dtype)
        cos = F.cosine_similarity(logits.detach().softmax(dim=1), one_hot, dim=1) * valid
        weight = 1 - cos if targeted else cos
        return (weight * ce).mean()
    raise UserError(f"unknown attack method {method!r}: choose one of {', '.join(METHODS)}")


def _l2_unit(g: torch.Tensor) -> torch.Tensor:
    norm = g.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
    return g / norm


def project(x: torch.Tensor, x0: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """`x` moved into the `norm` ball of radius `eps` around `x0`, then into [0, 1]."""
    delta = x - x0
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        scale = (delta.flatten(1).norm(dim=1).clamp(min=1e-12) / eps).clamp(min=1.0) if eps > 0 else None
        delta = delta / scale.view(-1, 1, 1, 1) if scale is not None else torch.zeros_like(delta)
    return within_budget((x0 + delta).clamp(0, 1), x0, eps, norm)


def within_budget(x: torch.Tensor, x0: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """`x` with the float rounding of x0 + δ undone where it left the budget: ‖x − x0‖ ≤ ε holds exactly as
    computed (L∞: the offending values step one float toward x0; L2: the image's δ shrinks by 10⁻⁶)."""
    if norm == "linf":
        for _ in range(4):  # a rounding error is an ulp or two
            over = (x - x0).abs() > eps
            if not over.any():
                break
            x = torch.where(over, torch.nextafter(x, x0), x)
        return x
    for _ in range(4):
        delta = x - x0
        size = delta.flatten(1).norm(dim=1)
        over = size > eps
        if not over.any():
            break
        shrink = torch.where(over, eps / size.clamp(min=1e-12) * (1 - 1e-6), torch.ones_like(size))
        x = torch.where(over.view(-1, 1, 1, 1), (x0 + delta * shrink.view(-1, 1, 1, 1)).clamp(0, 1), x)
    return x


def step(x: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor, eps: float, alpha: float, norm: str,
         targeted: bool = False) -> torch.Tensor:
    """One ascent (descent when `targeted`) step of size `alpha` and the projection back."""
    direction = grad.sign() if norm == "linf" else _l2_unit(grad)
    return project(x.detach() + (-alpha if targeted else alpha) * direction, x0, eps, norm)


def start_point(x0: torch.Tensor, eps: float, norm: str, seeds: Sequence[int]) -> torch.Tensor:
    """x0 plus a random point of the ball (U(−ε, ε) per pixel; L2: U(−1, 1) scaled to norm ε), one generator
    per image seeded by `seeds`, clipped to [0, 1]."""
    noise = []
    for image, seed in zip(x0, seeds, strict=True):
        g = torch.Generator().manual_seed(int(seed))
        noise.append(torch.rand(image.shape, generator=g, dtype=torch.float32) * 2 - 1)
    u = torch.stack(noise).to(x0.device, x0.dtype)
    delta = u * eps if norm == "linf" else _l2_unit(u) * eps
    return within_budget((x0 + delta).clamp(0, 1), x0, eps, norm)


def quantize_delta(x: torch.Tensor, x0: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """x0 + the perturbation rounded to the nearest 1/255, toward zero where rounding would leave the budget."""
    delta = x - x0
    rounded = torch.round(delta * 255) / 255
    toward_zero = torch.trunc(delta * 255) / 255
    if norm == "linf":
        rounded = torch.where(rounded.abs() > eps, toward_zero, rounded)
    else:
        over = rounded.flatten(1).norm(dim=1) > eps
        rounded = torch.where(over.view(-1, 1, 1, 1), toward_zero, rounded)
    return within_budget((x0 + rounded).clamp(0, 1), x0, eps, norm)


def check_attack(method: str, norm: str, eps: float, steps: int, alpha: float | None) -> None:
    if method not in METHODS:
        raise UserError(f"unknown attack method {method!r}: choose one of {', '.join(METHODS)}")
    if norm not in NORMS:
        raise UserError(f"unknown attack norm {norm!r}: choose linf or l2")
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 <= eps < float("inf")):
        raise UserError(f"attack eps must be a finite number ≥ 0, got {eps!r}")
    if type(steps) is not int or steps < 1:
        raise UserError(f"attack steps must be a whole number ≥ 1, got {steps!r}")
    if alpha is not None and not (isinstance(alpha, (int, float)) and 0 < alpha < float("inf")):
        raise UserError(f"attack alpha must be a positive number, got {alpha!r}")


def attack(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
           method: str = "pgd", norm: str = "linf", eps: float = 8 / 255, alpha: float | None = None,
           steps: int = 10, random_start: bool = True, seed: int = 0, targeted: bool = False, *,
           ids: Sequence[str] | None = None, quantize: bool = False,
           autocast: torch.dtype | None = None) -> torch.Tensor:
    """Adversarial images (B, 3, H, W) in [0, 1] for float `images` in [0, 1] and int64 `labels` (B, H, W)
    (255 ignored), by `method` under the `norm` budget `eps` (module docstring). `ids` name the images for
    their random-start seeds (default: their positions in the batch, which makes the noise depend on the
    batch: pass the dataset's names for results independent of batching). eps = 0 returns the images."""
    check_attack(method, norm, eps, steps, alpha)
    x0 = images.detach().float()
    if eps == 0:
        return x0.clone()
    alpha = default_alpha(eps, steps) if alpha is None else float(alpha)
    names = [str(i) for i in range(len(x0))] if ids is None else list(ids)
    if random_start:
        from ..corruptions import derive_seed

        seeds = [derive_seed(seed, name, f"{method}-{norm}", eps) for name in names]
        x = start_point(x0, eps, norm, seeds)
    else:
        x = x0.clone()
    module = model if isinstance(model, torch.nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    amp = torch.autocast(x0.device.type, dtype=autocast) if autocast is not None else nullcontext()
    try:
        for t in range(steps):
            x.requires_grad_(True)
            with torch.enable_grad():
                with amp:
                    logits = model(x)
                loss = attack_loss(method, logits.float(), labels, t, steps, targeted)
                (grad,) = torch.autograd.grad(loss, x)
            x = step(x, grad, x0, eps, alpha, norm, targeted)
    finally:
        if module is not None:
            module.train(was_training)
    x = x.detach()
    return quantize_delta(x, x0, eps, norm) if quantize else x
