"""Mix-FFN's depthwise 3×3 conv (with the GELU after it) as eager and ``torch.compile`` run it, side by side.

Four forms of one function on tokens (B, h*w, C), interleaved round by round: the eager Conv2d on the tokens'
channels-last view (what the eager model runs), the eager Conv2d on an NCHW copy, ``torch.compile`` of the
Conv2d form, and ``torch.compile`` of ``models.segformer.depthwise_3x3_tokens`` (nine shifted multiply-adds,
what a compiled model runs). Defaults: the shapes of MiT stage 1 and 2 at a 1024² input for B0/B2's widths
(C = 128/256 at 256², 256/512 at 128²). Prints median ms and each form's max |Δ| to the eager conv.

    python benchmarks/depthwise_speed.py
    python benchmarks/depthwise_speed.py --device cuda --shapes 256x256x256 --dtype bf16

Record results in benchmarks/RESULTS.md with the machine and versions this prints.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import segformer_bench as sb
from segformer_bench.models.segformer import depthwise_3x3_tokens

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def forms(conv: torch.nn.Conv2d, h: int, w: int) -> dict:
    def conv_view(t):
        B, N, C = t.shape
        return F.gelu(conv(t.transpose(1, 2).view(B, C, h, w)).flatten(2).transpose(1, 2))

    def conv_nchw(t):
        B, N, C = t.shape
        return F.gelu(conv(t.transpose(1, 2).reshape(B, C, h, w).contiguous())).flatten(2).transpose(1, 2)

    def shifted(t):
        return F.gelu(depthwise_3x3_tokens(t, conv.weight, conv.bias, h, w))

    return {"eager conv (channels-last view)": conv_view, "eager conv (NCHW copy)": conv_nchw,
            "compiled conv": torch.compile(conv_view, dynamic=False),
            "compiled shifted": torch.compile(shifted, dynamic=False)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["128x256x256", "256x256x256", "256x128x128", "512x128x128"],
                    help="CxHxW")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="the tokens' dtype (bf16: autocast's)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"# machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {device}")
    print(f"# versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"segformer-bench {sb.__version__}")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print("| C×H×W | dtype | " + " | ".join(f"{k} ms" for k in forms(torch.nn.Conv2d(1, 1, 3), 1, 1))
          + " | compiled shifted / eager conv | max Δ (conv NCHW, compiled conv, compiled shifted) |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        C, h, w = map(int, shape.split("x"))
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(C, C, 3, padding=1, groups=C).to(device).eval()
        tokens = torch.randn(1, h * w, C, device=device).to(DTYPES[args.dtype])
        runs = forms(conv, h, w)
        with torch.inference_mode(), torch.autocast(device.type, DTYPES[args.dtype],
                                                    enabled=args.dtype != "fp32"):
            outs = {k: fn(tokens).float() for k, fn in runs.items()}  # the first calls compile
            ref = outs["eager conv (channels-last view)"]
            times = {k: [] for k in runs}
            for _ in range(args.rounds):
                for k, fn in runs.items():
                    sync()
                    t0 = time.perf_counter()
                    fn(tokens)
                    sync()
                    times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        deltas = ", ".join(f"{(outs[k] - ref).abs().max().item():.1e}" for k in list(runs)[1:])
        print(f"| {shape} | {args.dtype} | " + " | ".join(f"{m:.1f}" for m in med.values())
              + f" | {med['compiled shifted'] / med['eager conv (channels-last view)']:.2f} | {deltas} |",
              flush=True)


if __name__ == "__main__":
    main()
