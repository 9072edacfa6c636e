"""Training-step speed of this package's SegFormer versus transformers' on identical weights and batches.

One step = forward, loss (logits upsampled bilinearly to the labels, cross-entropy ignoring 255),
backward and an AdamW update, for both models on the same batch, timed side by side and interleaved
round by round. Reports median seconds per step, the ratio ours/transformers (< 1 is faster) and
images/s; on CUDA also peak memory and optional bf16 autocast.

    python benchmarks/train_speed.py                                  # CPU: B0, batch 2 of 512×512 crops
    python benchmarks/train_speed.py --device cuda --variants b0 b2 --crop 1024 --batch 8 --amp bf16
    python benchmarks/train_speed.py --compile    # also ours through torch.compile (forward and backward)

With ``--compile`` a third step, ours through ``torch.compile`` (inductor, ``dynamic=False``; same parameters and
optimizer), is timed in the same rounds, and its first step's seconds beyond a compiled step are printed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import segformer_bench as sb
from segformer_bench.engine.train import seg_loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model, optimizer, x, y, amp, device: torch.device, hf: bool):
    """One training step on (x, y); transformers' model gets the same loss, so only the models differ."""
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = model(pixel_values=x).logits if hf else model(x)
        seg_loss(logits, y).backward()
        optimizer.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["b0"])
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time ours through torch.compile")
    args = ap.parse_args()
    device = torch.device(args.device)
    amp = torch.bfloat16 if args.amp == "bf16" else None

    import transformers
    from transformers import SegformerForSemanticSegmentation

    print(f"# machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    print(f"# versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, segformer-bench {sb.__version__}")
    print("| variant | crop | batch | amp | ours s/step | transformers s/step | ratio | ours img/s | "
          "transformers img/s | ours peak MiB | transformers peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.crop, args.crop, generator=g).to(device)
    y = torch.randint(0, 19, (args.batch, args.crop, args.crop), generator=g).to(device)
    y[:, :8] = 255
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            torch.manual_seed(0)
            ours = sb.build_model(variant, 19, drop_path_rate=0.0, head_dropout=0.0)
            sb.export_huggingface(ours, Path(tmp) / variant)
            theirs = SegformerForSemanticSegmentation.from_pretrained(
                Path(tmp) / variant, attn_implementation="sdpa", drop_path_rate=0.0, classifier_dropout_prob=0.0)
            ours, theirs = ours.to(device).train(), theirs.to(device).train()
            opt_ours = torch.optim.AdamW(ours.parameters(), lr=6e-5, weight_decay=0.01)
            opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=6e-5, weight_decay=0.01)

            step_ours = make_step(ours, opt_ours, x, y, amp, device, hf=False)
            step_theirs = make_step(theirs, opt_theirs, x, y, amp, device, hf=True)
            steps = {"ours": step_ours, "theirs": step_theirs}
            if args.compile:
                compiled = torch.compile(ours, dynamic=False)
                steps["compiled"] = make_step(compiled, opt_ours, x, y, amp, device, hf=False)
            times: dict[str, list[float]] = {k: [] for k in steps}
            peaks: dict[str, float | None] = {k: None for k in steps}
            first: dict[str, float] = {}
            for key, fn in steps.items():  # warm-up (the compiled step compiles here)
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                first[key] = time.perf_counter() - t0
            for _ in range(args.rounds):
                for key, fn in steps.items():
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    _sync(device)
                    t0 = time.perf_counter()
                    fn()
                    _sync(device)
                    times[key].append(time.perf_counter() - t0)
                    if device.type == "cuda":
                        peaks[key] = torch.cuda.max_memory_allocated(device) / 2**20
            a, b = statistics.median(times["ours"]), statistics.median(times["theirs"])
            mem = f"{peaks['ours']:.0f} | {peaks['theirs']:.0f}" if peaks["ours"] is not None else "– | –"
            print(f"| {variant} | {args.crop}² | {args.batch} | {args.amp} | {a:.3f} | {b:.3f} | {a / b:.2f} | "
                  f"{args.batch / a:.2f} | {args.batch / b:.2f} | {mem} |", flush=True)
            if args.compile:
                c = statistics.median(times["compiled"])
                print(f"# {variant} compiled: {c:.3f} s/step, {c / b:.2f}× transformers, {c / a:.2f}× ours eager; "
                      f"compile {first['compiled'] - c:.1f} s", flush=True)


if __name__ == "__main__":
    main()
