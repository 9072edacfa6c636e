"""Attack throughput: PGD, SegPGD and CosPGD through the forward the adversarial analysis uses, side by side.

Each attack runs through ``segformer_bench.attacks.attack`` on ``engine.inference.eval_logits`` with whole-image
settings, exactly as ``analyses/adversarial/run.py``'s adversary calls it (images on the 0–1 scale, one random
start, float32 or bf16 autocast for the forward). The methods and precisions are interleaved round by round,
so that machine noise hits them alike; reports the median seconds per attack, per step and images/s
(one image attacked = `steps` forward and backward passes). The analysis attacks each image alone (batch 1,
so that an adversarial image does not depend on its batch); larger --batches show what batching would gain.

    python benchmarks/attack_speed.py                                   # CPU: B0, 512×1024, batch 1, 10 steps
    python benchmarks/attack_speed.py --device cuda --batches 1 8 --dtypes fp32 bf16

Record results in benchmarks/RESULTS.md with the machine and versions this prints.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import segformer_bench as sb
from segformer_bench.attacks import METHODS, attack
from segformer_bench.engine.inference import AUTOCAST, EvalSettings, eval_logits

DTYPES = {"fp32": "none", "bf16": "bf16", "fp16": "fp16"}  # --dtypes name → EvalSettings.autocast


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_attack(model, x: torch.Tensor, y: torch.Tensor, method: str, norm: str, steps: int, autocast: str,
                device: torch.device) -> float:
    """Seconds for one attack of the batch `x` (labels `y`) as the adversarial analysis runs it."""
    settings = EvalSettings(mode="whole", autocast=autocast)

    def forward(images: torch.Tensor) -> torch.Tensor:
        return eval_logits(model, images, settings, scale=1.0)

    _sync(device)
    t0 = time.perf_counter()
    adv = attack(forward, x, y, method=method, norm=norm, eps=8 / 255, steps=steps, random_start=True, seed=0,
                 ids=[f"image {i}" for i in range(len(x))], autocast=AUTOCAST[autocast])
    _sync(device)
    seconds = time.perf_counter() - t0
    assert adv.shape == x.shape and bool(((adv - x).abs() <= 8 / 255).all())  # the budget holds
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["b0"])
    ap.add_argument("--size", type=int, nargs=2, default=[512, 1024], metavar=("H", "W"))
    ap.add_argument("--batches", nargs="+", type=int, default=[1])
    ap.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    ap.add_argument("--norm", choices=["linf", "l2"], default="linf")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["fp32", "bf16"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per setting (after one warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    h, w = args.size

    print(f"# machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    print(f"# versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"segformer-bench {sb.__version__}")
    print(f"# {args.norm}, ε = 8/255, {args.steps} steps, one random start, {h}×{w}, random weights (19 classes)")
    print("| variant | batch | method | dtype | s per attack | ms per step | img/s |")
    print("|---|---|---|---|---|---|---|")
    for variant in args.variants:
        torch.manual_seed(0)
        model = sb.build_model(variant, num_classes=19).eval().to(device)
        for batch in args.batches:
            g = torch.Generator().manual_seed(batch)
            x = torch.rand(batch, 3, h, w, generator=g).to(device)
            y = torch.randint(0, 19, (batch, h, w), generator=g).to(device)
            settings = [(m, d) for m in args.methods for d in args.dtypes]
            times: dict[tuple[str, str], list[float]] = {s: [] for s in settings}
            for s in settings:  # warm-up: kernels, autotuning, allocator
                time_attack(model, x, y, s[0], args.norm, args.steps, DTYPES[s[1]], device)
            for _ in range(args.rounds):
                for s in settings:
                    times[s].append(time_attack(model, x, y, s[0], args.norm, args.steps, DTYPES[s[1]], device))
            for method, dtype in settings:
                t = statistics.median(times[method, dtype])
                print(f"| {variant} | {batch} | {method} | {dtype} | {t:.3f} | {t / args.steps * 1e3:.1f} | "
                      f"{batch / t:.2f} |", flush=True)


if __name__ == "__main__":
    main()
