"""The adversarial report: a pure function of the stored (model, attack, ε) units.

Table ``adversarial``: one row per model and attack, and a **worst case** row per model — per image, the attack
whose adversarial image has the lowest pixel accuracy (as SEA reports the worst case over its attacks),
recombined from the stored per-image matrices without rerunning anything; columns: ε, clean (ε = 0) first; cells
mIoU (%) with a 95 % percentile bootstrap interval over images. Table ``robust``: clean and robust mIoU (the worst
case at the headline ε, by default the largest). Plot ``adversarial.png``: mIoU against ε per model, one panel
per attack and one for the worst case. The CSV files hold the unrounded numbers and aAcc.

Calibration, when the units hold counts (of the probabilities at the adversarial images; the worst case takes
each image's counts from the attack it picked): table ``adversarial_calibration`` (top-label ECE (%) per model ·
attack × ε with its bootstrap interval; the CSV adds MCE, NLL and Brier), ``adversarial_ece.png`` (ECE against ε)
and ``adversarial_reliability.png`` (per model, clean against each attack at the headline ε).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np

from ...calibration import brier, mce, nll
from ...report import plots
from ...report.page import Section, figure
from ...report.tables import MISSING, Table, fmt_interval, table_files, to_html
from ..stats import Interval, ece_interval, miou_interval
from .spec import AdversarialSpec, eps_text
from .store import AdversarialResult

WORST = "worst case"


def pixel_accuracy(matrices: np.ndarray) -> np.ndarray:
    """Per-image pixel accuracy of (N, K, K) confusion matrices (1 for an image without labelled pixels)."""
    m = np.asarray(matrices, np.float64)
    total = m.sum(axis=(1, 2))
    return np.where(total > 0, np.trace(m, axis1=1, axis2=2) / np.maximum(total, 1), 1.0)


def worst_case(units: Sequence[AdversarialResult]) -> AdversarialResult | None:
    """Per image, the unit with the lowest pixel accuracy (the first such in the order given); None unless every
    unit holds the same images."""
    if not units or any(u.names != units[0].names for u in units):
        return None
    acc = np.stack([pixel_accuracy(u.per_image) for u in units])  # (A, N)
    pick = acc.argmin(axis=0)
    n = np.arange(len(units[0].names))
    stacked = np.stack([u.per_image for u in units])
    losses = np.stack([u.loss for u in units])
    counts = (np.stack([u.calibration for u in units])[pick, n] if all(u.calibration is not None for u in units)
              else None)
    return AdversarialResult(stacked[pick, n], losses[pick, n], units[0].names, {"worst_of": len(units)}, counts)


def summarize(results: Mapping[tuple[str, str, float], AdversarialResult], spec: AdversarialSpec,
              models: Sequence[str]) -> tuple[list[float], dict[tuple[str, str, float], AdversarialResult]]:
    """(every ε in ascending order, units by (model, attack or WORST, ε)) with the worst-case units added."""
    eps = sorted({e for a in spec.attacks for e in a.eps})
    units = dict(results)
    labels = [a.label for a in spec.attacks]
    for m in models:
        for e in eps:
            found = [results[(m, a, e)] for a in labels if (m, a, e) in results]
            expected = [a for a in labels if e in next(x.eps for x in spec.attacks if x.label == a)]
            if len(spec.attacks) > 1 and found and len(found) == len(expected):
                worst = worst_case(found)
                if worst is not None:
                    units[(m, WORST, e)] = worst
    return eps, units


def _intervals(units: Mapping[tuple[str, str, float], AdversarialResult], seed: int,
               n_resamples: int) -> dict[tuple[str, str, float], Interval]:
    return {k: miou_interval(u.per_image, n_resamples=n_resamples, seed=seed) for k, u in units.items()}


def adversarial_table(eps: Sequence[float], rows: Sequence[tuple[str, str]],
                      intervals: Mapping[tuple[str, str, float], Interval], top: str = "mIoU (%)") -> Table:
    columns = ["clean" if e == 0 else f"ε {eps_text(e)}" for e in eps]
    body, rules = [], set()
    for i, (model, attack) in enumerate(rows):
        if i and rows[i - 1][0] != model:
            rules.add(len(body))
        cells = [fmt_interval(intervals[(model, attack, e)], intervals[(model, attack, e)].value)
                 if (model, attack, e) in intervals else MISSING for e in eps]
        body.append((f"{model} · {attack}", cells))
    return Table("Model · attack", columns, body, top=[(top, len(columns))], rules=rules)


def robust_table(models: Sequence[str], headline: float, row_attack: Mapping[str, str],
                 intervals: Mapping[tuple[str, str, float], Interval]) -> Table:
    rows = []
    for m in models:
        clean = intervals.get((m, row_attack[m], 0.0)) or next(
            (v for (mm, _, e), v in intervals.items() if mm == m and e == 0), None)
        robust = intervals.get((m, row_attack[m], headline))
        rows.append((m, [MISSING if clean is None else fmt_interval(clean, clean.value),
                         MISSING if robust is None else fmt_interval(robust, robust.value)]))
    return Table("Model", ["clean mIoU", f"robust mIoU (ε {eps_text(headline)})"], rows)


def adversarial_frame(units: Mapping[tuple[str, str, float], AdversarialResult],
                      intervals: Mapping[tuple[str, str, float], Interval]):  # -> pd.DataFrame
    import pandas as pd

    from ...engine.metrics import scores

    records = []
    for (m, a, e), u in units.items():
        s = scores(u.per_image.sum(axis=0))
        iv = intervals[(m, a, e)]
        records.append({"model": m, "attack": a, "eps_255": e, "mIoU": 100 * s["mIoU"], "mIoU_low": 100 * iv.low,
                        "mIoU_high": 100 * iv.high, "aAcc": 100 * s["aAcc"], "mean_loss": float(np.mean(u.loss)),
                        "images": len(u.names)})
    return pd.DataFrame.from_records(records).set_index(["model", "attack", "eps_255"])


def adversarial_png(eps: Sequence[float], models: Sequence[str], panels: Sequence[str],
                    intervals: Mapping[tuple[str, str, float], Interval]) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(panels) + 0.8, 3.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, attack in zip(axes, panels, strict=True):
        for k, m in enumerate(models):
            points = [(e, 100 * intervals[(m, attack, e)].value) for e in eps if (m, attack, e) in intervals]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", linewidth=1.8,
                        color=plots.COLORS[k % len(plots.COLORS)], label=plots.plain(m))
        ax.set_title(plots.plain(attack), fontsize=10)
        ax.set_xlabel("ε (/255)")
        ax.grid(alpha=0.3, linewidth=0.6)
    axes[0].set_ylabel("mIoU (%)")
    axes[-1].legend(fontsize=8, frameon=False)
    return plots.png(fig)


def gallery_png(gallery: Mapping[str, Mapping], num_classes: int) -> bytes:
    """A row per model: the image, the perturbation (amplified to fill the colour range, grey = 0), the
    adversarial image, and the model's predictions of the clean and the adversarial image."""
    from matplotlib.figure import Figure

    from ...data.labels import colorize

    models = list(gallery)
    titles = ["image", "perturbation (amplified)", "adversarial image", "prediction", "prediction under attack"]
    H, W = next(iter(gallery.values()))["image"].shape[:2]
    fig = Figure(figsize=(5 * 2.0 * W / max(H, W) + 1.2, len(models) * 2.0 * H / max(H, W) + 0.6), dpi=100,
                 layout="constrained")
    axes = fig.subplots(len(models), 5, squeeze=False)
    for i, m in enumerate(models):
        g = gallery[m]
        delta = g["adversarial"] - g["image"].astype(np.float64)
        scale = np.abs(delta).max()
        shown = 0.5 + delta / (2 * scale) if scale > 0 else np.full_like(delta, 0.5)
        pictures = [g["image"], shown, np.clip(g["adversarial"], 0, 255).round().astype(np.uint8),
                    colorize(g["prediction"].astype(np.int64), num_classes),
                    colorize(g["adversarial_prediction"].astype(np.int64), num_classes)]
        for j, (ax, picture) in enumerate(zip(axes[i], pictures, strict=True)):
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
        axes[i, 0].set_ylabel(plots.plain(f"{m}\n{g['attack']} ε {eps_text(g['eps'])}"), fontsize=8)
    return plots.png(fig)


def adversarial_report(results: Mapping[tuple[str, str, float], AdversarialResult], spec: AdversarialSpec,
                       models: Sequence[str], *, seed: int = 0, n_resamples: int = 1000,
                       gallery: Mapping[str, Mapping] | None = None, num_classes: int = 19,
                       ) -> tuple[dict[str, str | bytes], list[Section]]:
    """({file name: content}, [(heading, note HTML, content HTML)]) of the adversarial analysis."""
    eps, units = summarize(results, spec, models)
    intervals = _intervals(units, seed, n_resamples)
    labels = [a.label for a in spec.attacks]
    shown = [m for m in models if any(k[0] == m for k in units)]
    rows = [(m, a) for m in shown for a in [*labels, WORST] if any(k[:2] == (m, a) for k in units)]
    headline = spec.headline_eps if spec.headline_eps is not None else max(eps)
    row_attack = {m: WORST if any(k[:2] == (m, WORST) for k in units) else labels[0] for m in shown}
    missing = [f"{m} {a} {eps_text(e)}" for m in models for a in spec.attacks for e in a.eps
               if (m, a.label, e) not in results]
    incomplete = f" Incomplete run: not computed yet: {', '.join(missing)}." if missing else ""
    settings = "; ".join(f"{a.label}: {a.steps} steps, α {'2.5·ε/steps' if a.alpha is None else eps_text(a.alpha)}, "
                         f"{a.restarts} start(s){'' if a.random_start else ' without random start'}"
                         for a in spec.attacks)
    rounding = "rounded to the 1/255 grid" if spec.quantize else "not rounded to 8 bits"
    caption = (f"mIoU (%) under white-box attacks, 95 % bootstrap intervals over images ({n_resamples} resamples, "
               f"seed {seed}); ε in 1/255 of the 0–1 image scale; adversarial images {rounding}. {settings}."
               + (" Worst case: per image, the attack with the lowest pixel accuracy." if len(labels) > 1 else "")
               + incomplete)
    table = adversarial_table(eps, rows, intervals)
    robust = robust_table(shown, headline, row_attack, intervals)
    robust_caption = (f"Robust mIoU: the {'worst case over the attacks' if len(labels) > 1 else labels[0]} at ε "
                      f"{eps_text(headline)}, next to clean mIoU (%, 95 % bootstrap intervals)." + incomplete)
    panels = [*labels, *([WORST] if len(labels) > 1 else [])]
    png = adversarial_png(eps, shown, panels, intervals)
    frame = adversarial_frame(units, intervals)
    files: dict[str, str | bytes] = {**table_files("adversarial", table, caption, frame),
                                     **table_files("robust", robust, robust_caption), "adversarial.png": png}
    note = (html.escape(caption) + " Attacks run through each model as it is evaluated (its own preprocessing; the "
            "suite's whole-image or sliding-window inference), with per-image seeded random starts.")
    sections = [("Adversarial robustness", note, to_html(table)),
                ("Robust mIoU", html.escape(robust_caption), to_html(robust)),
                ("mIoU against the attack budget", "One panel per attack; one line per model.",
                 figure(png, "mIoU against the attack budget"))]
    if gallery:
        files["adversarial_gallery.png"] = gallery_png(gallery, num_classes)
        sections.append(("Adversarial examples", "The first image, its perturbation (scaled to the full colour range; "
                         "grey is no change), the adversarial image and each model's predictions. Each model has its "
                         "own adversarial image: the attacks are white-box.",
                         figure(files["adversarial_gallery.png"], "adversarial examples")))
    more_files, more_sections = adversarial_calibration(units, eps, rows, panels, headline, seed=seed,
                                                        n_resamples=n_resamples)
    return files | more_files, sections + more_sections


def adversarial_calibration(units: Mapping[tuple[str, str, float], AdversarialResult], eps: Sequence[float],
                            rows: Sequence[tuple[str, str]], panels: Sequence[str], headline: float, *,
                            seed: int = 0, n_resamples: int = 1000) -> tuple[dict[str, str | bytes], list[Section]]:
    """({file name: content}, sections) of calibration under attack; empty when no unit holds counts. Models with
    units but no counts (outputs that are scores) are named as left out."""
    import pandas as pd

    counted = {k: u for k, u in units.items() if u.calibration is not None}
    if not counted:
        return {}, []
    models = list(dict.fromkeys(m for m, _ in rows))
    shown = [m for m in models if any(k[0] == m for k in counted)]
    left_out = [m for m in models if m not in shown]
    intervals = {k: ece_interval(u.calibration, n_resamples=n_resamples, seed=seed) for k, u in counted.items()}
    table = adversarial_table(eps, [r for r in rows if r[0] in shown], intervals, top="ECE (%), lower is better")
    records = []
    for (m, a, e), iv in intervals.items():
        c = counted[(m, a, e)].calibration
        records.append({"model": m, "attack": a, "eps_255": e, "ECE": 100 * iv.value, "ECE_low": 100 * iv.low,
                        "ECE_high": 100 * iv.high, "MCE": 100 * mce(c), "NLL": nll(c), "Brier": brier(c),
                        "pixels": float(c[:, -1].sum()), "images": len(c)})
    frame = pd.DataFrame.from_records(records).set_index(["model", "attack", "eps_255"])
    caption = (f"Calibration under attack: top-label ECE (%) over the non-ignored pixels of the adversarial images, "
               f"95 % bootstrap intervals over images ({n_resamples} resamples, seed {seed}); the CSV adds MCE, NLL "
               "and Brier." + (" Worst case: each image's counts from the attack with the lowest pixel accuracy."
                           if WORST in panels else "")
               + (f" Left out (outputs are scores, not probabilities): {', '.join(left_out)}." if left_out else ""))
    lines = {a: {m: points for m in shown
                 if (points := [(e, intervals[(m, a, e)].value) for e in eps if (m, a, e) in intervals])}
             for a in panels}
    reliability: dict[str, dict[str, np.ndarray]] = {}
    for m in shown:
        clean = next((u.calibration for (mm, _, e), u in counted.items() if mm == m and e == 0), None)
        reliability[m] = {} if clean is None else {"clean": clean}
        if headline != 0:
            reliability[m] |= {f"{a} ε {eps_text(headline)}": counted[(m, a, headline)].calibration
                               for a in panels if (m, a, headline) in counted}
    files: dict[str, str | bytes] = table_files("adversarial_calibration", table, caption, frame)
    sections = [("Calibration under attack", html.escape(caption), to_html(table))]
    lines = {a: v for a, v in lines.items() if v}
    if lines:
        files["adversarial_ece.png"] = plots.ece_vs_severity(lines, xlabel="ε (/255)")
        sections.append(("ECE against the attack budget", "One panel per attack; one line per model. An attack that "
                         "leaves a model confidently wrong raises its ECE.",
                         figure(files["adversarial_ece.png"], "ECE against the attack budget")))
    reliability = {m: v for m, v in reliability.items() if v}
    if reliability:
        files["adversarial_reliability.png"] = plots.reliability_diagrams(reliability)
        sections.append(("Reliability under attack", "Per model: accuracy against confidence in each bin on the clean "
                         f"images and under each attack at ε {eps_text(headline)}; below, the share of the pixels in "
                         "each bin.", figure(files["adversarial_reliability.png"], "reliability under attack")))
    return files, sections

