"""The ``segformer-bench`` command: one subcommand per library function.

Handlers import torch and the model lazily, so that ``segformer-bench --help`` starts instantly. A user's
mistake (a ``UserError``) is printed as one line and exits with status 2; a bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence

from .. import __version__
from ..errors import UserError

PROG = "segformer-bench"
VARIANT_NAMES = ("b0", "b1", "b2", "b3", "b4", "b5")  # for --help, which must not import torch to list them


def _status(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _models(args: argparse.Namespace) -> int:
    from .tools import format_variant_table, variant_table

    size = tuple(args.size)
    rows = variant_table(args.variants, num_classes=args.num_classes, size=size, macs=not args.no_macs,
                         progress=sys.stderr.isatty())
    print(format_variant_table(rows, args.num_classes, size))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .tools import segment_images

    written = segment_images(args.images, args.out, checkpoint=args.checkpoint, variant=args.variant,
                             num_classes=args.num_classes, device=args.device, mode=args.mode,
                             crop=tuple(args.crop), stride=tuple(args.stride), log=_status)
    for path in written:
        print(path)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .tools import convert_checkpoint

    print(convert_checkpoint(args.src, args.out, args.format, num_classes=args.num_classes))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    s = run_demo(args.out, variant=args.variant, checkpoint=args.checkpoint, device=args.device,
                 size=tuple(args.size), seed=args.seed, num_classes=args.num_classes, log=_status)
    H, W = s["input_size"]
    acc = s["pixel_accuracy"]
    print(f"SegFormer-{s['variant']}: {s['params'] / 1e6:.3f} M parameters, {s['gmacs']:.1f} GMACs at {H}×{W}, "
          f"on {s['device']}")
    print(f"HuggingFace export round trip: max |Δlogit| = {s['hf_roundtrip_max_abs_logit_diff']:.2g}")
    print(f"whole image {s['timings_s']['predict_whole']:.2f} s, sliding window ({s['slide']['windows']} windows) "
          f"{s['timings_s']['predict_slide']:.2f} s; they agree on {s['agreement_whole_vs_slide']:.1%} of pixels")
    if acc is not None:
        print(f"pixel accuracy on the scene: whole {acc['whole']:.1%}, sliding window {acc['slide']:.1%}")
    print(f"note: {s['note']}")
    print(f"wrote {args.out}/: {', '.join(v for k, v in s['files'].items() if k != 'summary')} and summary.json")
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..config import override
    from ..engine.train import load_train_config, train

    config = override(load_train_config(args.config, args.preset), args.set or [], "--set")
    path = train(config, args.run_dir, restart=args.restart, progress=not args.no_progress, log=_status)
    print(path)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..engine.evaluate import run_evaluation

    run_evaluation(checkpoint=args.checkpoint, dataset=args.dataset, split=args.split, root=args.data_root,
                   preset=args.preset, overrides=args.set or [], limit=_count(args.limit, "--limit"),
                   device=args.device, out=args.out, export_cityscapes=args.export_cityscapes,
                   progress=not args.no_progress, dataset_options=_dataset_options(args), log=_status)
    return 0


def _dataset_options(args: argparse.Namespace) -> dict:
    """--dataset-option key=value pairs (values are YAML scalars or lists: size=[512,1024]), each key one the
    dataset takes."""
    from ..config import parse_assignments
    from ..data import check_dataset_options

    options = parse_assignments(args.dataset_option or [], "--dataset-option")
    check_dataset_options(args.dataset, options, "--dataset-option")
    return options


def _count(value: int | None, flag: str) -> int | None:
    """A --limit or --workers value: None (not given) or at least 1. Checked here rather than by argparse,
    whose usage errors are not the one line every other mistake gets."""
    if value is not None and value < 1:
        raise UserError(f"{flag} must be at least 1, got {value}")
    return value


def _corrupt(args: argparse.Namespace) -> int:
    from ..corruptions.generate import CorruptionJob, generate
    from ..corruptions.protocols import SEVERITIES, get_protocol

    protocol = get_protocol(args.protocol)
    cells: tuple = ()
    if args.corruption or args.severity:
        names = args.corruption or list(protocol.corruptions)
        cells = tuple((c, s) for c in names for s in (args.severity or (
            protocol.severities_of(c) if c in protocol.corruptions else SEVERITIES)))
    if not 0 <= args.seed < 2**64:
        raise UserError(f"--seed must be in [0, 2**64), got {args.seed}")
    job = CorruptionJob(dataset=args.dataset, split=args.split, root=args.data_root,
                        dataset_options=_dataset_options(args), protocol=args.protocol, cells=cells, seed=args.seed,
                        backend=args.backend, limit=_count(args.limit, "--limit"))
    workers = _count(args.workers, "--workers")
    print(generate(job, args.out, workers=workers, progress=not args.no_progress, log=_status))
    return 0


def _run(args: argparse.Namespace) -> int:
    from ..bench.runner import run_suite
    from ..bench.suite import load_suite

    print(run_suite(load_suite(args.suite), args.run_dir, restart=args.restart, progress=not args.no_progress,
                    render=not args.no_report, log=_status))
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..bench.runner import render_run

    print(render_run(args.run_dir, args.out, log=_status))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from ..bench.validate import validate_suite

    lines = [validate_suite(path) for path in args.suites]  # every suite checked before anything is printed
    print("\n".join(lines))
    return 0


def _ls(args: argparse.Namespace) -> int:
    from ..analyses import ANALYSES
    from ..bench.suite import list_suites

    print("suites:")
    for name, description in list_suites():
        print(f"  {name:<20} {description}")
    print("analyses:")
    for name, analysis in ANALYSES.items():
        print(f"  {name:<20} {analysis.title} (suite section '{analysis.section}')")
    for analysis in ANALYSES.values():
        for heading, entries in analysis.catalogue():
            print(f"{heading}:")
            for name, description in entries:
                print(f"  {name:<20} {description}")
    print("model variants:")
    print(f"  {', '.join(VARIANT_NAMES)}, deeplabv3plus-r50, deeplabv3plus-r101")
    from ..attacks import METHODS, NORMS
    from ..models.entry import FAMILY_NAMES

    print("model families (a suite model's family):")
    print(f"  {', '.join(FAMILY_NAMES)} (mmseg only where mmsegmentation is installed)")
    print("attacks (adversarial section):")
    print(f"  methods {', '.join(METHODS)}; norms {', '.join(NORMS)}")
    return 0


def _size(text: str) -> int:
    """A size in pixels or classes: a whole number ≥ 1 (argparse names the flag in its message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return value


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="synthcity",
                   help="synthcity (default), cityscapes, ade20k, acdc, dark_zurich or foggy_cityscapes")
    p.add_argument("--data-root", metavar="DIR", help="dataset root (default: $CITYSCAPES_ROOT, $ADE20K_ROOT, "
                                                      "$ACDC_ROOT, $DARK_ZURICH_ROOT or $FOGGY_CITYSCAPES_ROOT)")
    p.add_argument("--dataset-option", action="append", metavar="KEY=VALUE",
                   help="dataset option, e.g. size=[512,1024] for SynthCity, condition=night for ACDC "
                        "(repeatable)")
    p.add_argument("--split", default="val", help="train, val or test (default: val)")


def _add_model_source_args(p: argparse.ArgumentParser, checkpoint_help: str, classes_help: str) -> None:
    """--checkpoint or --variant (a freshly built model), and --num-classes."""
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", metavar="PATH", help=checkpoint_help)
    source.add_argument("--variant", default="b0",
                        help=f"build an untrained model of this variant: {', '.join(VARIANT_NAMES)} (default: b0)")
    p.add_argument("--num-classes", type=_size, default=None, help=classes_help)


def _add_device_arg(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--device", default=default, help=f"cpu, cuda, cuda:N or auto (default: {default})")


def _add_progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line like every other mistake (the subcommand, the problem, where the
    help is) instead of argparse's usage block; subcommand parsers are of this class too."""

    def error(self, message: str) -> typing.NoReturn:
        command = self.prog.removeprefix(PROG).strip()
        self.exit(2, f"{PROG}: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="SegFormer (MiT-B0…B5): inspect variants, segment images, convert checkpoints, "
                    "train and evaluate.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    p = commands.add_parser("models", help="parameters and MACs of the variants",
                            description="Parameters and multiply-accumulates (the paper's 'GFLOPs') per variant.")
    p.add_argument("variants", nargs="*", metavar="VARIANT",
                   help=f"variants to list (default: all of {', '.join(VARIANT_NAMES)})")
    p.add_argument("--num-classes", type=_size, default=19, help="classes of the decoder head (default: 19)")
    p.add_argument("--size", type=_size, nargs=2, default=[1024, 2048], metavar=("H", "W"),
                   help="input size for the MAC count (default: 1024 2048)")
    p.add_argument("--no-macs", action="store_true", help="skip the MAC count")
    p.set_defaults(handler=_models)

    p = commands.add_parser("predict", help="segment images into label maps",
                            description="Write <stem>_trainids.png (class ids) and <stem>_color.png per image.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format Pillow reads)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    _add_model_source_args(p, "any supported checkpoint file or HuggingFace directory",
                           "classes of a freshly built head (default: 19, or the checkpoint's own)")
    _add_device_arg(p, "cpu")
    p.add_argument("--mode", choices=("whole", "slide"), default="whole", help="whole image or sliding window")
    p.add_argument("--crop", type=_size, nargs=2, default=[1024, 1024], metavar=("H", "W"),
                   help="sliding window size (default: 1024 1024)")
    p.add_argument("--stride", type=_size, nargs=2, default=[768, 768], metavar=("H", "W"),
                   help="sliding window stride (default: 768 768)")
    p.set_defaults(handler=_predict)

    p = commands.add_parser("convert", help="convert a checkpoint to another format",
                            description="Read any supported checkpoint and write it in another layout.")
    p.add_argument("src", metavar="SRC", help="checkpoint file or HuggingFace directory")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="a directory for huggingface; a .pt/.pth/.safetensors file for segformer-bench; "
                        "a .pth file for official")
    p.add_argument("--format", choices=("huggingface", "segformer-bench", "official"), default="huggingface",
                   help="output layout (default: huggingface)")
    p.add_argument("--num-classes", type=_size, default=None, help="classes of a new head for an encoder-only SRC")
    p.set_defaults(handler=_convert)

    p = commands.add_parser("train", help="train SegFormer with the paper's recipe (resumable)",
                            description="Train with the official recipe (a preset), overridden by a YAML file and "
                                        "--set field=value; run again with the same arguments to resume. "
                                        "For several GPUs or nodes, launch the same command with torchrun.")
    p.add_argument("--run-dir", required=True, metavar="DIR", help="checkpoints, metrics.jsonl and model.pt go here")
    p.add_argument("--preset", default=None,
                   help="cityscapes (default), ade20k, synthcity or cityscapes-deeplab-mmseg (mmseg's DeepLabV3+)")
    p.add_argument("--config", metavar="YAML", help="TrainConfig fields laid over the preset")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override one field (repeatable)")
    p.add_argument("--restart", action="store_true", help="discard the run directory's checkpoints and start anew")
    _add_progress_arg(p)
    p.set_defaults(handler=_train)

    p = commands.add_parser("eval", help="evaluate a checkpoint: mIoU, per-class IoU, aAcc, mAcc",
                            description="Evaluate on a dataset by the official test protocol (a preset), "
                                        "optionally exporting Cityscapes labelId PNGs for cityscapesScripts.")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="any supported checkpoint")
    _add_dataset_args(p)
    p.add_argument("--preset", default=None,
                   help="cityscapes, cityscapes-ms, ade20k, ade20k-ms or whole (default: the dataset's own)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override an EvalSettings field, e.g. mode=whole, batch_size=4, autocast=bf16")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (N ≥ 1)")
    _add_device_arg(p, "auto")
    p.add_argument("--out", metavar="JSON", help="write every number to this JSON file")
    p.add_argument("--export-cityscapes", metavar="DIR",
                   help="write predictions as Cityscapes labelId PNGs for the official evaluator")
    _add_progress_arg(p)
    p.set_defaults(handler=_eval)

    p = commands.add_parser("corrupt", help="write a corrupted copy of a dataset (Cityscapes-C and the like)",
                            description="Write <out>/<corruption>/<severity>/<image path>.png for every image and cell "
                                        "of a protocol, with a manifest; run again to resume.")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    _add_dataset_args(p)
    p.add_argument("--protocol", default="segformer", help="segformer (default), imagenet-c or all")
    p.add_argument("--corruption", action="append", metavar="NAME", help="only these corruptions (repeatable)")
    p.add_argument("--severity", action="append", type=int, metavar="N", help="only these severities (repeatable)")
    p.add_argument("--seed", type=int, default=0,
                   help="suite seed in [0, 2**64); per-image seeds derive from it (default: 0)")
    p.add_argument("--backend", default="fast", help="fast (default), reference or torch")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (N ≥ 1)")
    _add_progress_arg(p)
    p.set_defaults(handler=_corrupt)

    p = commands.add_parser("run", help="run a benchmark suite (resumable)",
                            description="Evaluate every model × corruption × severity cell of a suite into a "
                                        "results store and render its reports; run again to resume. Under "
                                        "torchrun the images are sharded over the ranks.")
    p.add_argument("suite", metavar="SUITE", help="a suite file, or the name of one in suites/ (e.g. quickstart)")
    p.add_argument("--run-dir", metavar="DIR", help="default: runs/<suite name> in the working directory")
    p.add_argument("--restart", action="store_true",
                   help="discard the run dir's results (and its training runs whose recipe changed) and start anew")
    p.add_argument("--no-report", action="store_true", help="do not render the reports at the end")
    _add_progress_arg(p)
    p.set_defaults(handler=_run)

    p = commands.add_parser("report", help="render the reports of a run from its results store",
                            description="Tables (Markdown, LaTeX, CSV), plots and index.html from results.sqlite.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="DIR", help="default: the suite's report directory")
    p.set_defaults(handler=_report)

    p = commands.add_parser("validate", help="check suite files without running them",
                            description="Check each suite's fields, its device name, that its checkpoints and other "
                                        "input files exist, its training recipes, and that its datasets take their "
                                        "options and open (without reading images). Prints one line per suite.")
    p.add_argument("suites", nargs="+", metavar="SUITE", help="a suite file, or the name of one in suites/")
    p.set_defaults(handler=_validate)

    p = commands.add_parser("ls", help="list suites, analyses, protocols, model variants and families, attacks")
    p.set_defaults(handler=_ls)

    p = commands.add_parser("demo", help="end-to-end demo on a procedural street scene",
                            description="Build (or load) a model, round-trip it through the HuggingFace format, "
                                        "and segment a procedural street scene whole-image and by sliding window.")
    p.add_argument("--out", default="reports/demo", metavar="DIR", help="output directory (default: reports/demo)")
    _add_model_source_args(p, "a trained checkpoint instead of random weights",
                           "classes of a new head for an encoder-only checkpoint")
    _add_device_arg(p, "cpu")
    p.add_argument("--size", type=_size, nargs=2, default=[512, 1024], metavar=("H", "W"),
                   help="scene size (default: 512 1024)")
    p.add_argument("--seed", type=int, default=0, help="seeds the model's initialisation and the scene (default: 0)")
    p.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors: argparse has printed what to say
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    try:
        return args.handler(args)
    except UserError as e:
        message = " ".join(str(e).split())  # one line, whatever the message holds
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
