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

from niftykit.cli_parser import build_parser
from niftykit.errors import ConfigError, NiftykitError

__all__ = ["main"]

log = logging.getLogger("niftykit")


def _parser() -> argparse.ArgumentParser:
    return build_parser({
        "train": _train, "infer": _infer, "export": _export, "evaluate": _evaluate,
        "split": _split, "crossval": _crossval, "report": _report,
        "prepare_abdominal": _prepare_abdominal, "phantoms": _phantoms, "networks": _networks,
        "config_show": _config_show, "config_convert": _config_convert})


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
    if args.model and Path(args.model[0]).expanduser().is_file():
        # a training config given as the one model, as an ensemble member may be: its run
        if args.config:
            raise ConfigError(f"infer: --model {args.model[0]} is a config file; infer its "
                              "training run with -c CONFIG (--model alone takes an export "
                              "folder or a config, not both -c and --model CONFIG)")
        args.config, args.model = args.model[0], None
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
    found = app.subjects("all")
    subjects = [s.id for s in found]
    strata = app.strata(found)
    if args.folds is None:
        split_file = config.system.dataset_split_file
        if split_file.exists() and not args.overwrite:
            raise ConfigError(f"{split_file} exists; pass --overwrite to draw a new split")
        split_file.unlink(missing_ok=True)
        split = load_or_create_split(
            split_file, subjects, seed=config.system.seed,
            validation_fraction=config.training.exclude_fraction_for_validation,
            inference_fraction=config.training.exclude_fraction_for_inference, strata=strata)
        counts = {phase: list(split.values()).count(phase)
                  for phase in ("training", "validation", "inference")}
        log.info("%s: %s", split_file if split_file.exists() else "no split file needed (no "
                 "exclusion fractions set): all subjects train", counts)
        return 0
    out = Path(args.out) if args.out else Path(config.system.model_dir) / "folds"
    files = write_folds(out, subjects, args.folds, seed=config.system.seed,
                        validation_fraction=config.training.exclude_fraction_for_validation,
                        overwrite=args.overwrite, strata=strata)
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
