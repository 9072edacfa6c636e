"""Forward-pass speed of this package's SegFormer versus transformers' on identical weights.

Both models are built from the same randomised weights (ours exported with ``export_huggingface`` and
loaded by transformers), then timed side by side in one process, interleaved round by round so that
machine noise hits both alike. Reports the median time per batch, the ratio ours/transformers
(< 1 is faster), throughput and, on CUDA, peak memory.

With ``--fast-path`` it times, side by side and interleaved the same way, the evaluation's fast path as
``segment_batch`` runs it (``Segmenter.network``): transformers eager fp32, ours eager fp32, ours compiled fp32
(``compile: on``), ours under bf16 autocast (``autocast: bf16``) and ours compiled under bf16 autocast; each as a
ratio to transformers' eager fp32; the compile's seconds (first call less an eager call), the break-even it implies
for ``compile: auto`` (compile seconds over seconds saved per 512² input: ``COMPILE_BREAK_EVEN``), compiled fp32's
max |Δlogit| to eager, and bf16's argmax agreement (%) and max |Δlogit| to fp32.

    python benchmarks/model_speed.py                     # CPU: B0 and B2 at 512² and 1024², fp32
    python benchmarks/model_speed.py --device cuda --dtypes fp32 bf16 fp16 --batches 1 8 --whole
    python benchmarks/model_speed.py --fast-path         # CPU: the fast path, B0 and B2 at 512² and 1024²

Record results in benchmarks/RESULTS.md with the machine and versions this prints.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

import segformer_bench as sb

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _peak_mb(fn, device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    _sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def build_pair(variant: str, device: torch.device, dtype: torch.dtype, tmp: Path):
    from transformers import SegformerForSemanticSegmentation

    torch.manual_seed(0)
    ours = sb.build_model(variant, num_classes=19).eval()
    sb.export_huggingface(ours, tmp / variant)
    theirs = SegformerForSemanticSegmentation.from_pretrained(tmp / variant, attn_implementation="sdpa").eval()
    return ours.to(device, dtype), theirs.to(device, dtype)


def _first_call(fn, device: torch.device) -> tuple[float, torch.Tensor]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _hf_logits(model, x: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=x).logits


def _under_bf16(fn, x: torch.Tensor, device: torch.device):
    def run() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return fn(x)

    return run


def fast_path(args: argparse.Namespace, device: torch.device, shapes: list[tuple[int, int]], tmp: Path) -> None:
    """The ``--fast-path`` table (module docstring)."""
    from segformer_bench.models.segmenter import as_segmenter

    print("| variant | input | batch | transformers fp32 ms | ours fp32 ms | compiled fp32 ms | bf16 ms | "
          "compiled bf16 ms | ratios to transformers fp32 (ours, compiled, bf16, compiled bf16) | compile s "
          "(fp32, bf16) | break-even 512² passes | compiled max Δ | bf16 agreement % | bf16 max Δ |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for variant in args.variants:
        torch._dynamo.reset()  # each variant's compiles start from an empty cache (and its recompile limit)
        ours, theirs = build_pair(variant, device, torch.float32, tmp)
        seg = as_segmenter(ours)
        compiled = seg.compiled_network(args.compile_mode)
        for h, w in shapes:
            for batch in args.batches:
                x = torch.randn(batch, 3, h, w, device=device)
                runs = {"theirs": partial(_hf_logits, theirs, x), "ours": partial(seg.network, x),
                        "compiled": partial(compiled, x), "bf16": _under_bf16(seg.network, x, device),
                        "compiled bf16": _under_bf16(compiled, x, device)}
                with torch.inference_mode():
                    reference = runs["ours"]()
                    torch.testing.assert_close(reference, runs["theirs"]().float(), rtol=0.05, atol=1e-3)
                    compile_s, out = _first_call(runs["compiled"], device)
                    compile_bf16_s, _ = _first_call(runs["compiled bf16"], device)
                    compiled_delta = (out - reference).abs().max().item()
                    half = runs["bf16"]()
                    agreement = (half.argmax(1) == reference.argmax(1)).float().mean().item()
                    bf16_delta = (half - reference).abs().max().item()
                    times: dict[str, list[float]] = {k: [] for k in runs}
                    for _ in range(args.rounds):
                        for key, fn in runs.items():
                            times[key].append(_time(fn, device))
                med = {k: statistics.median(v) for k, v in times.items()}
                ratios = ", ".join(f"{med[k] / med['theirs']:.2f}" for k in ("ours", "compiled", "bf16",
                                                                               "compiled bf16"))
                saved = (med["ours"] - med["compiled"]) / (batch * h * w / 512**2)  # seconds per 512² input
                compile_cost = compile_s - med["compiled"]
                break_even = f"{compile_cost / saved:.0f}" if saved > 0 else "never"
                print(f"| {variant} | {h}×{w} | {batch} | " + " | ".join(f"{med[k] * 1e3:.1f}" for k in runs)
                      + f" | {ratios} | {compile_cost:.1f}, {compile_bf16_s - med['compiled bf16']:.1f} | "
                      f"{break_even} | {compiled_delta:.1e} | {100 * agreement:.2f} | {bf16_delta:.1e} |",
                      flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["b0", "b2"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[512, 1024], help="square input sides")
    ap.add_argument("--whole", action="store_true", help="also time whole 1024×2048 images")
    ap.add_argument("--batches", nargs="+", type=int, default=[1])
    ap.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["fp32"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per model (after one warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--fast-path", action="store_true",
                    help="time the evaluation's fast path (compile, bf16 autocast) instead of the dtype table")
    ap.add_argument("--compile-mode", default=None, choices=["default", "reduce-overhead", "max-autotune"],
                    help="torch.compile mode for --fast-path (default: torch's default)")
    ap.add_argument("--warm-cache", action="store_true",
                    help="let --fast-path's compiles reuse inductor's on-disk caches (default: off, so the compile "
                         "seconds are what a first run pays)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    import transformers

    print(f"# machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    print(f"# versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, segformer-bench {sb.__version__}")
    shapes = [(s, s) for s in args.sizes] + ([(1024, 2048)] if args.whole else [])
    if args.fast_path:
        if args.compile_mode == "default":
            args.compile_mode = None
        if not args.warm_cache:
            from torch._inductor import config as inductor_config

            inductor_config.force_disable_caches = True
        with tempfile.TemporaryDirectory() as tmp:
            fast_path(args, device, shapes, Path(tmp))
        return
    print("| variant | input | batch | dtype | ours ms | transformers ms | ratio | ours img/s | "
          "transformers img/s | ours peak MiB | transformers peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            for dtype_name in args.dtypes:
                dtype = DTYPES[dtype_name]
                ours, theirs = build_pair(variant, device, dtype, Path(tmp))
                for h, w in shapes:
                    for batch in args.batches:
                        x = torch.randn(batch, 3, h, w, device=device, dtype=dtype)
                        with torch.inference_mode():
                            run_ours = lambda: ours(x)  # noqa: B023
                            run_theirs = lambda: theirs(pixel_values=x).logits  # noqa: B023
                            torch.testing.assert_close(run_ours().float(), run_theirs().float(),
                                                       rtol=0.05, atol=0.05 if dtype != torch.float32 else 1e-3)
                            t_ours, t_theirs = [], []
                            for _ in range(args.rounds):
                                t_ours.append(_time(run_ours, device))
                                t_theirs.append(_time(run_theirs, device))
                            m_ours, m_theirs = _peak_mb(run_ours, device), _peak_mb(run_theirs, device)
                        a, b = statistics.median(t_ours), statistics.median(t_theirs)
                        mem = (f"{m_ours:.0f} | {m_theirs:.0f}" if m_ours is not None else "– | –")
                        print(f"| {variant} | {h}×{w} | {batch} | {dtype_name} | {a * 1e3:.1f} | {b * 1e3:.1f} | "
                              f"{a / b:.2f} | {batch / a:.1f} | {batch / b:.1f} | {mem} |", flush=True)


if __name__ == "__main__":
    main()
