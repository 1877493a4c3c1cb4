"""The ``niftykit`` command line (also ``python -m niftykit``).

Thin by design: parse arguments, load the config, hand over to the engine.
TensorFlow is imported only inside the commands that need it, so
``niftykit --help`` and ``niftykit config ...`` return at once.
A user error exits with status 2 and one line on standard error
(``--debug`` adds the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

from niftykit import __version__
from niftykit.errors import ConfigError, NiftykitError

__all__ = ["main"]

log = logging.getLogger("niftykit")

_OVERRIDE_HELP = ("override a setting: --set training.lr=0.001, --set inputs.ct.pixdim=[1,1,1]; "
                  "NiftyNet-style --lr 0.001 also works")


def _common(config_required: bool = True) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-c", "--config", required=config_required, metavar="FILE",
                        help="YAML or NiftyNet INI config file")
    parent.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=_OVERRIDE_HELP)
    parent.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow logs")
    return parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="niftykit", description="Deep learning for medical images (TensorFlow 2 / Keras 3).",
        epilog="Example: niftykit train -c configs/quickstart.yaml --max_iter 50")
    parser.add_argument("--version", action="version", version=f"niftykit {__version__}")
    parser.add_argument("--debug", action="store_true", dest="debug_global", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common()
    for name, func, text in (("train", _train, "train the network of a config"),
                             ("evaluate", _evaluate, "score inferred outputs against references")):
        sub = commands.add_parser(name, parents=[common], help=text, description=text)
        sub.add_argument("--overwrite", action="store_true",
                         help="replace existing checkpoints / outputs instead of stopping")
        sub.set_defaults(func=func)
    _infer_parser(commands)
    _export_parser(commands, common)
    _study_parsers(commands, common)
    split = commands.add_parser(
        "split", parents=[common], help="write the dataset split file, or K cross-validation folds",
        description="Without --folds: write system.dataset_split_file from "
                    "training.exclude_fraction_for_validation/_inference (seeded by system.seed). "
                    "With --folds K: write K split files, each holding one fold out for inference.")
    split.add_argument("--folds", type=int, metavar="K", help="number of cross-validation folds")
    split.add_argument("--out", metavar="DIR", help="folder for the fold files (default: <model_dir>/folds)")
    split.add_argument("--overwrite", action="store_true", help="replace existing split files")
    split.set_defaults(func=_split)
    from niftykit.data.phantom_options import PHANTOMS_HELP, add_phantom_arguments
    phantoms = add_phantom_arguments(commands.add_parser(
        "phantoms", help="write synthetic abdominal CT cases with organ labels",
        description=PHANTOMS_HELP))
    phantoms.add_argument("--debug", action="store_true", help="show tracebacks")
    phantoms.set_defaults(func=_phantoms)
    networks = commands.add_parser(
        "networks", help="list the networks: window rule, output, parameters",
        description="List every registered network with the window sizes it takes and what it "
                    "outputs; with --params, also its parameter count for its default params.")
    networks.add_argument("--params", action="store_true",
                          help="build each network (default params) and count its parameters")
    networks.add_argument("--channels", type=int, default=1, help="input channels (default 1)")
    networks.add_argument("--classes", type=int, default=2, help="outputs (default 2)")
    networks.add_argument("--debug", action="store_true", help="show tracebacks")
    networks.set_defaults(func=_networks)
    config = commands.add_parser("config", help="show or convert configs")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_commands.add_parser("show", parents=[common],
                                      help="print the fully resolved config as YAML")
    show.set_defaults(func=_config_show)
    convert = config_commands.add_parser("convert", help="print a NiftyNet INI as niftykit YAML")
    convert.add_argument("ini", metavar="FILE.ini")
    convert.add_argument("-o", "--output", metavar="FILE.yaml",
                         help="write here (paths rebased to its folder) instead of printing")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output")
    convert.add_argument("--debug", action="store_true", help="show tracebacks")
    convert.set_defaults(func=_config_convert)
    return parser


def _infer_parser(commands: Any) -> None:
    infer = commands.add_parser(
        "infer", parents=[_common(config_required=False)],
        help="write outputs for the inference subjects (of a training run, or of an export)",
        description="With -c: restore inference.inference_iter (-1 latest, N, or best) of the "
                    "config's training run. With --model EXPORT_DIR (from `niftykit export`): "
                    "no training config; the images come from --input, or from -c CONFIG "
                    "(its input sections and [inference] settings). With --model given two or "
                    "more times: an ensemble; each model (an export folder or a training config) "
                    "infers with its own preprocessing and window, and their class "
                    "probabilities are fused on the input image's grid (--fusion, --weights); "
                    "the first model's settings name the outputs.",
        epilog="Examples: niftykit infer -c configs/quickstart.yaml --inference_iter best; "
               "niftykit infer --model runs/quickstart/model/export --input scans/ --out seg/; "
               "niftykit infer --model runs/a/export --model runs/b/export --weights 0.7 0.3 "
               "--input scans/ --out fused/")
    infer.add_argument("--model", action="append", metavar="EXPORT_DIR",
                       help="infer with an exported model instead of a training run; repeat for "
                            "an ensemble (whose members may also be training configs)")
    infer.add_argument("--weights", nargs="+", type=float, metavar="W",
                       help="ensemble: one weight per --model, in order (normalised to sum to 1; "
                            "default equal)")
    infer.add_argument("--fusion", choices=("mean", "vote"),
                       help="ensemble: mean of the class probabilities (default) or weighted "
                            "majority vote of the labels (ties: the lowest class index)")
    infer.add_argument("--input", nargs="+", metavar="PATH",
                       help="image files or folders to infer (instead of the config's subjects)")
    infer.add_argument("--out", metavar="DIR",
                       help="output folder (default inference.save_seg_dir; with --model and "
                            "no -c: ./output)")
    infer.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    infer.set_defaults(func=_infer)


def _export_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "export", parents=[common], help="write a self-contained model folder for inference",
        description="Write model.keras, a TensorFlow SavedModel, the resolved config and the "
                    "preprocessing files (landmarks, label mapping) to one folder, for "
                    "`niftykit infer --model DIR` and niftykit.api.load(DIR).")
    export.add_argument("--out", metavar="DIR", help="the folder (default <model_dir>/export)")
    export.add_argument("--iter", metavar="N|best", type=_iteration,
                        help="checkpoint to export: an iteration, -1 (latest) or best "
                             "(default inference.inference_iter)")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export")
    export.set_defaults(func=_export)


def _study_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    """``crossval``, ``report`` and ``prepare-abdominal`` (issue 7)."""
    names = dict(choices=("auto", "abdominal", "codes"), default="auto",
                 help="label names: auto (segmentation.label_names, else organ names when the "
                      "codes are the abdominal ones), abdominal, or codes only")
    crossval = commands.add_parser(
        "crossval", parents=[common], help="train, infer and evaluate K cross-validation folds",
        description="Deal the subjects into K folds (seeded by system.seed); for each fold train "
                    "on the others (validation from training.exclude_fraction_for_validation), "
                    "infer the held-out fold and evaluate it, in <out>/fold_<k>/. Resumable: "
                    "evaluated folds are skipped, unfinished training resumes. Writes "
                    "<out>/crossval_summary.csv: per label mean, sd, median over subjects.")
    crossval.add_argument("--folds", type=int, required=True, metavar="K", help="number of folds")
    crossval.add_argument("--out", metavar="DIR", help="folder (default <model_dir>/crossval)")
    crossval.add_argument("--fold", type=int, metavar="I", help="run fold I only (0-based)")
    crossval.add_argument("--overwrite", action="store_true",
                          help="draw the folds again and redo the folds run (deletes them)")
    crossval.add_argument("--names", **names)
    crossval.set_defaults(func=_crossval)
    report = commands.add_parser(
        "report", parents=[common], help="write an HTML report with tables and plots",
        description="Write report/index.html: Dice (and other metrics) per label, box plots, "
                    "loss curves and overlays of prediction against reference, for the config's "
                    "run or a cross-validation folder (--crossval).")
    report.add_argument("--crossval", metavar="DIR", help="a `niftykit crossval` folder")
    report.add_argument("--out", metavar="DIR",
                        help="report folder (default <model_dir or crossval>/report)")
    report.add_argument("--cases", type=int, default=3, metavar="N",
                        help="subjects shown as overlays (default 3)")
    report.add_argument("--names", **names)
    report.set_defaults(func=_report)
    _prepare_parser(commands)


def _prepare_parser(commands: Any) -> None:
    prepare = commands.add_parser(
        "prepare-abdominal", help="lay out the public abdominal CT cases for abdominal_seg.yaml",
        description="Match the TCIA Pancreas-CT (DICOM) and BTCV (NIfTI) images to the Zenodo "
                    "1169361 label files and cropping.csv, and write caseNNN_CT.nii.gz (int16 HU), "
                    "caseNNN_Label.nii.gz and cropping.csv, as `niftykit phantoms` does. See "
                    "demos/abdominal_ct/README.md.")
    prepare.add_argument("--images", required=True, nargs="+", metavar="DIR",
                         help="folders searched (recursively) for the CT images")
    prepare.add_argument("--labels", required=True, nargs="+", metavar="DIR",
                         help="folders searched (recursively) for the label files")
    prepare.add_argument("--crops", required=True, metavar="FILE", help="Zenodo cropping.csv")
    prepare.add_argument("--out", required=True, metavar="DIR", help="output folder")
    prepare.add_argument("--match", action="append", default=[], metavar="SOURCE.KIND=REGEX",
                         help="replace a matching rule, e.g. tcia.image='PANCREAS_(\\d+)' "
                              "(sources tcia, btcv; kinds image, label, crop)")
    prepare.add_argument("--keep-all-codes", action="store_true",
                         help="keep label codes other than the 8 organs (default: set to 0)")
    prepare.add_argument("--skip-missing", action="store_true",
                         help="leave out cases whose image or label is missing (default: error)")
    prepare.add_argument("--grid", choices=("check", "label"), default="check",
                         help="image and label on different grids: check (error) or label "
                              "(same shape: take the label's affine; see the README)")
    prepare.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    prepare.add_argument("--debug", action="store_true", help="show tracebacks")
    prepare.set_defaults(func=_prepare_abdominal)


def _iteration(text: str) -> Any:
    if text.strip().lower() == "best":
        return "best"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an iteration, -1 or best, got '{text}'") \
            from None
    if value < -1:
        raise argparse.ArgumentTypeError(f"expected an iteration >= -1 or best, got {value}")
    return value


def _overrides(args: argparse.Namespace, extra: Sequence[str]) -> List[str]:
    """``--set`` values plus NiftyNet-style ``--key value`` / ``--key=value`` pairs."""
    found = list(getattr(args, "set", []) or [])
    items = list(extra)
    while items:
        item = items.pop(0)
        if not item.startswith("--") or len(item) < 3:
            raise ConfigError(f"command line: unexpected argument '{item}'")
        key, eq, value = item[2:].partition("=")
        if not eq:
            if not items or (items[0].startswith("--") and not _is_number(items[0])):
                raise ConfigError(f"command line: --{key} needs a value")
            value = items.pop(0)
        found.append(f"{key}={value}")
    return found


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _load(args: argparse.Namespace, overrides: List[str], check: bool = True) -> Any:
    from niftykit.config import check_supported, load_config
    config = load_config(args.config, overrides)
    if check:
        check_supported(config)
    return config


def _application(config: Any) -> Any:
    from niftykit.application import make_application  # not at import: `--help` stays instant
    return make_application(config)


def _train(args: argparse.Namespace, overrides: List[str]) -> int:
    from niftykit.engine import train
    app = _application(_load(args, overrides))
    folder = train(app, overwrite=args.overwrite, debug=args.debug)
    log.info("checkpoints in %s", folder)
    return 0


def _infer(args: argparse.Namespace, overrides: List[str]) -> int:
    from niftykit.engine import infer
    from niftykit.engine.inference import input_subjects
    model = None
    if args.model and len(args.model) > 1:
        return _infer_ensemble(args, overrides)
    if args.weights or args.fusion:
        raise ConfigError("infer: --weights and --fusion are for ensembles: give --model two or "
                          "more times")
    if args.model:
        from niftykit.config import check_supported
        from niftykit.engine.export import export_config, load_network
        if not args.config and not args.input:
            raise ConfigError("infer --model: give the images with --input FILE_OR_FOLDER ... "
                              "or -c CONFIG (whose input sections say where they are)")
        data = _load(args, overrides, check=False) if args.config else None
        config = export_config(args.model[0], data, overrides)
        check_supported(config)
        if not args.out and data is None:
            args.out = "output"
    elif not args.config:
        raise ConfigError("infer: give -c CONFIG (a training run) or --model EXPORT_DIR "
                          "(from `niftykit export`)")
    else:
        config = _load(args, overrides)
    if args.out:
        config.inference.save_seg_dir = Path(args.out).expanduser().absolute()
    app = _application(config)
    if args.model:
        model = load_network(args.model[0], config, debug=args.debug)
    subjects = input_subjects(app, args.input) if args.input else None
    infer(app, overwrite=args.overwrite, debug=args.debug, model=model, subjects=subjects)
    return 0


def _infer_ensemble(args: argparse.Namespace, overrides: List[str]) -> int:
    from niftykit.config import check_supported
    from niftykit.engine.ensemble import infer_ensemble, member_config
    from niftykit.engine.export import is_export, load_network
    from niftykit.engine.inference import input_subjects
    exports = [is_export(spec) for spec in args.model]
    if any(exports) and not args.config and not args.input:
        raise ConfigError("infer --model: give the images with --input FILE_OR_FOLDER ... "
                          "or -c CONFIG (whose input sections say where they are)")
    data = _load(args, overrides, check=False) if args.config else None
    configs = [member_config(spec, data, overrides) for spec in args.model]
    for config in configs:
        check_supported(config)
    if args.out or data is None:
        configs[0].inference.save_seg_dir = Path(args.out or "output").expanduser().absolute()
    apps = [_application(config) for config in configs]
    models = [load_network(spec, config, debug=args.debug) if export else None
              for spec, config, export in zip(args.model, configs, exports)]
    subjects = input_subjects(apps[0], args.input) if args.input else None
    infer_ensemble(apps, args.model, models=models, weights=args.weights,
                   fusion=args.fusion or "mean", overwrite=args.overwrite, debug=args.debug,
                   subjects=subjects)
    return 0


def _export(args: argparse.Namespace, overrides: List[str]) -> int:
    from niftykit.engine.export import export
    app = _application(_load(args, overrides))
    export(app, Path(args.out) if args.out else None, iteration=args.iter,
           overwrite=args.overwrite, debug=args.debug)
    return 0


def _evaluate(args: argparse.Namespace, overrides: List[str]) -> int:
    from niftykit.engine import evaluate
    evaluate(_application(_load(args, overrides)), overwrite=args.overwrite)
    return 0


def _split(args: argparse.Namespace, overrides: List[str]) -> int:
    from niftykit.io import load_or_create_split, write_folds
    config = _load(args, overrides, check=False)
    app = _application(config)
    subjects = [s.id for s in app.subjects("all")]
    if args.folds is None:
        split_file = config.system.dataset_split_file
        if split_file.exists() and not args.overwrite:
            raise ConfigError(f"{split_file} exists; pass --overwrite to draw a new split")
        split_file.unlink(missing_ok=True)
        split = load_or_create_split(
            split_file, subjects, seed=config.system.seed,
            validation_fraction=config.training.exclude_fraction_for_validation,
            inference_fraction=config.training.exclude_fraction_for_inference)
        counts = {phase: list(split.values()).count(phase)
                  for phase in ("training", "validation", "inference")}
        log.info("%s: %s", split_file if split_file.exists() else "no split file needed (no "
                 "exclusion fractions set): all subjects train", counts)
        return 0
    out = Path(args.out) if args.out else Path(config.system.model_dir) / "folds"
    files = write_folds(out, subjects, args.folds, seed=config.system.seed,
                        validation_fraction=config.training.exclude_fraction_for_validation,
                        overwrite=args.overwrite)
    for index, path in enumerate(files):
        log.info("fold %d: %s", index, path)
    log.info("train fold k with: niftykit train -c %s --set system.dataset_split_file=%s "
             "--set system.model_dir=%s", args.config, out / "fold_<k>.csv",
             Path(config.system.model_dir) / "fold_<k>")
    return 0


def _crossval(args: argparse.Namespace, overrides: List[str]) -> int:
    from niftykit.engine.crossval import run_crossval
    from niftykit.report.names import label_names
    config = _load(args, overrides)
    run_crossval(args.config, overrides, folds=args.folds,
                 out=Path(args.out) if args.out else None, only=args.fold,
                 overwrite=args.overwrite, debug=args.debug,
                 namer=lambda codes: label_names(codes, config, args.names))
    return 0


def _report(args: argparse.Namespace, overrides: List[str]) -> int:
    from niftykit.report import write_report
    write_report(_load(args, overrides, check=False),
                 crossval=Path(args.crossval) if args.crossval else None,
                 out=Path(args.out) if args.out else None, names=args.names, cases=args.cases)
    return 0


def _prepare_abdominal(args: argparse.Namespace, overrides: List[str]) -> int:
    if overrides:
        raise ConfigError(f"command line: prepare-abdominal takes no overrides, got {overrides}")
    from niftykit.data.prepare_abdominal import prepare_abdominal
    prepare_abdominal(args.images, args.labels, args.crops, args.out, rules=args.match,
                      keep_all_codes=args.keep_all_codes, skip_missing=args.skip_missing,
                      grid=args.grid, overwrite=args.overwrite)
    return 0


def _config_show(args: argparse.Namespace, overrides: List[str]) -> int:
    from niftykit.config import config_to_yaml
    sys.stdout.write(config_to_yaml(_load(args, overrides, check=False)))
    return 0


def _config_convert(args: argparse.Namespace, overrides: List[str]) -> int:
    from niftykit.config import convert_ini
    if overrides:
        raise ConfigError("command line: config convert takes no overrides")
    text = convert_ini(args.ini, args.output)
    if args.output:
        from niftykit.io import write_text
        write_text(Path(args.output), text, overwrite=args.overwrite)
        log.info("wrote %s", args.output)
    else:
        sys.stdout.write(text)
    return 0


def _phantoms(args: argparse.Namespace, overrides: List[str]) -> int:
    if overrides:
        raise ConfigError(f"command line: phantoms takes no overrides, got {overrides}")
    from niftykit.data.abdomen import run_phantoms
    return run_phantoms(args)


def _networks(args: argparse.Namespace, overrides: List[str]) -> int:
    """Print the network registry: name, class, window rule, output, parameter count."""
    if overrides:
        raise ConfigError(f"command line: networks takes no overrides, got {overrides}")
    from niftykit.engine.runtime import import_tensorflow
    import_tensorflow("", args.debug)  # the network modules import Keras
    from niftykit.network import NETWORKS, nearest_valid, window_output
    rows = []
    for name in NETWORKS.names():
        cls = NETWORKS.get(name)
        rank = 2 if name == "unet_2d" else 3
        size = 64 if cls.output_size(64, {}) is not None else nearest_valid(cls, 64, {})[-1]
        window = (size, size, 1) if rank == 2 else (size,) * 3
        out = ("one vector" if cls.output_kind == "vector"
               else "x".join(map(str, window_output(cls, window, {}))))
        row = [name, f"{cls.__module__}:{cls.__name__}", cls.window_rule({}),
               f"{'x'.join(map(str, window))} -> {out}"]
        if args.params:
            import keras
            model = cls(num_classes=args.classes, spatial_rank=rank, name="network")
            model(keras.Input(window + (args.channels,)))
            row.append(f"{model.count_params():,}")
        rows.append(row)
    header = ["name", "class", "windows it takes", "example"] + (["parameters"] if args.params else [])
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"niftykit: warning: {text}" if record.levelno >= logging.WARNING else text


def _setup_logging() -> None:
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(_Format("%(message)s"))
        log.addHandler(handler)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    args.debug = bool(getattr(args, "debug", False) or args.debug_global)
    _setup_logging()
    try:
        func: Callable[[argparse.Namespace, List[str]], int] = args.func
        return func(args, _overrides(args, extra))
    except (NiftykitError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(exc).split())
        print(f"niftykit: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("niftykit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
