"""End-to-end time of the segformer protocol (clean + 72 cells) for one model on 1024×2048 images.

Per image and cell: corruption (fast backend on the CPU, or torch on the device), inference by the
Cityscapes test protocol (sliding 1024×1024 windows, stride 768), and bookkeeping (confusion matrix and
the store's transaction). Reports the split, the time per image, and the extrapolation to Cityscapes'
500 val images. Uses SynthCity at Cityscapes size (Cityscapes itself with --cityscapes-root).

    python benchmarks/protocol_time.py --images 1                         # CPU
    python benchmarks/protocol_time.py --device cuda --backend torch --autocast bf16 --images 8
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="b0")
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", choices=["fast", "torch"], default="fast")
    ap.add_argument("--autocast", choices=["none", "bf16", "fp16"], default="none")
    ap.add_argument("--cityscapes-root", default=None)
    ap.add_argument("--size", type=int, nargs=2, default=[1024, 2048], metavar=("H", "W"),
                    help="SynthCity image size; the test's window, stride and scale shrink with it (quick checks)")
    args = ap.parse_args()

    import segformer_bench as sb
    from segformer_bench.analyses.corruption.store import add_cell
    from segformer_bench.bench.runner import open_store
    from segformer_bench.corruptions import corrupt, corrupt_batch, derive_seed, get_protocol
    from segformer_bench.data import build_dataset
    from segformer_bench.engine.evaluate import EVAL_PRESETS
    from segformer_bench.engine.inference import AUTOCAST, segment_batch
    from segformer_bench.engine.metrics import per_image_confusion, scores

    device = torch.device(args.device)
    if args.cityscapes_root:
        dataset = build_dataset("cityscapes", "val", args.cityscapes_root)
    else:
        dataset = build_dataset("synthcity", "val", size=tuple(args.size), length=args.images)
    model = sb.build_model(args.variant, 19).eval().to(device)
    settings = EVAL_PRESETS["cityscapes"]
    if args.size != [1024, 2048] and not args.cityscapes_root:
        f = args.size[0] / 1024  # the same test on a smaller image: 1024² windows sliding by 768 at 1024×2048
        settings = dataclasses.replace(settings, crop=(round(1024 * f),) * 2, stride=(round(768 * f),) * 2,
                                       img_scale=(args.size[1], args.size[0]))
    cells = [("clean", 0)] + get_protocol("segformer").cells()
    amp = AUTOCAST[args.autocast]
    spent = {"data": 0.0, "corruption": 0.0, "inference": 0.0, "bookkeeping": 0.0}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "results.sqlite")
        for i in range(args.images):
            t0 = time.perf_counter()
            sample = dataset[i]
            spent["data"] += time.perf_counter() - t0
            for corruption, severity in cells:
                seed = derive_seed(0, sample["name"], corruption, severity)
                t0 = time.perf_counter()
                if corruption == "clean":
                    image = torch.from_numpy(sample["image"]).permute(2, 0, 1)[None].to(device)
                elif args.backend == "torch":
                    image = torch.from_numpy(sample["image"]).permute(2, 0, 1)[None].to(device)
                    image = corrupt_batch(image, corruption, severity, [seed])
                else:
                    image = torch.from_numpy(corrupt(sample["image"], corruption, severity, seed)).permute(2, 0, 1)
                    image = image[None].to(device)
                sync()
                t1 = time.perf_counter()
                with torch.inference_mode(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    pred = segment_batch(model, image, settings)
                sync()
                t2 = time.perf_counter()
                label = torch.from_numpy(sample["label"])[None].to(device)
                cm = per_image_confusion(pred, label, 19).cpu().numpy()
                add_cell(store, "bench", f"{corruption}-{i}", severity, scores(cm.sum(0)), cm, [sample["name"]], 0,
                         t2 - t1)
                t3 = time.perf_counter()
                spent["corruption"] += t1 - t0
                spent["inference"] += t2 - t1
                spent["bookkeeping"] += t3 - t2
        store.close()

    total = sum(spent.values())
    per_image = total / args.images
    print(f"# machine: {platform.machine()}, torch threads {torch.get_num_threads()}"
          + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    print(f"# versions: python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
          f"segformer-bench {sb.__version__}")
    print(f"# {args.variant}, {len(cells)} evaluations per image (clean + 72 cells), "
          f"sliding window {settings.crop[0]}² / {settings.stride[0]}, "
          f"backend {args.backend}, autocast {args.autocast}, {args.images} image(s)")
    print("| part | seconds per image | share |")
    print("|---|---|---|")
    for part, seconds in spent.items():
        print(f"| {part} | {seconds / args.images:.2f} | {seconds / total:.1%} |")
    print(f"| **total** | **{per_image:.2f}** | 100% |")
    print(f"extrapolated to Cityscapes' 500 val images: {per_image * 500 / 3600:.2f} h "
          f"({per_image * 500 / 60:.1f} min)")


if __name__ == "__main__":
    main()
