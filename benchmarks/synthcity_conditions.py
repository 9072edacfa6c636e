"""SynthCity's conditions: what rendering a scene in fog, night, rain or snow costs next to the clear render.

Renders the same scenes clear and under each condition at every level, side by side in one run, and prints the
median seconds per scene and the ratio to clear (issue target: the weather adds at most about the clear render).

    python benchmarks/synthcity_conditions.py                  # 256×512, 8 scenes, levels 1 and 5
    python benchmarks/synthcity_conditions.py --size 512 1024 --scenes 4
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=[256, 512], metavar=("H", "W"))
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import numpy as np

    from segformer_bench.data.synthcity import SynthCity, render
    from segformer_bench.data.synthcity.weather import CONDITIONS, Weather

    size = tuple(args.size)
    ds = SynthCity("val", size=size)
    scenes = [ds.scene(i) for i in range(args.scenes)]

    def seconds(condition: str | None, level: int) -> float:
        """Median over repeats of the mean seconds per scene."""
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for i, scene in enumerate(scenes):
                render(scene, size, None if condition is None else Weather(condition, level, (0, 1, i)))
            runs.append((time.perf_counter() - start) / len(scenes))
        return statistics.median(runs)

    print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}, numpy "
          f"{np.__version__}; {size[0]}×{size[1]}, {len(scenes)} scenes, median of {args.repeats}")
    seconds(None, 1)  # warm-up: first-touch allocations and imports are not the clear render's cost
    clear = seconds(None, 1)
    print("| condition | level | ms per scene | × clear |\n|---|---|---|---|")
    print(f"| clear | – | {1000 * clear:.1f} | 1.00 |")
    for condition in (c for c in CONDITIONS if c != "clear"):
        for level in args.levels:
            s = seconds(condition, level)
            print(f"| {condition} | {level} | {1000 * s:.1f} | {s / clear:.2f} |")


if __name__ == "__main__":
    main()
