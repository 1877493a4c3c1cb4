"""The ``niftykit`` command-line grammar: commands, their arguments and help.

What the commands do is in :mod:`niftykit.cli`, which passes its handlers in; this
module imports nothing heavy, so ``niftykit --help`` returns at once.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, List, Mapping

from niftykit import __version__

__all__ = ["build_parser", "iteration"]

#: a command's handler: ``(arguments, overrides) -> exit status``
Handler = Callable[[argparse.Namespace, List[str]], int]

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


def build_parser(handlers: Mapping[str, Handler]) -> argparse.ArgumentParser:
    """The ``niftykit`` parser; each command calls ``handlers[<command>]`` (``args.func``)."""
    parser = argparse.ArgumentParser(
        prog="niftykit", description="Deep learning for medical images (TensorFlow 2 / Keras 3).",
        epilog="Example: niftykit train -c configs/quickstart.yaml --max_iter 50")
    parser.add_argument("--version", action="version", version=f"niftykit {__version__}")
    parser.add_argument("--debug", action="store_true", dest="debug_global", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common()
    for name, text in (("train", "train the network of a config"),
                       ("evaluate", "score inferred outputs against references")):
        sub = commands.add_parser(name, parents=[common], help=text, description=text)
        sub.add_argument("--overwrite", action="store_true",
                         help="replace existing checkpoints / outputs instead of stopping")
        sub.set_defaults(func=handlers[name])
    _infer_parser(commands, handlers)
    _export_parser(commands, common, handlers)
    _study_parsers(commands, common, handlers)
    split = commands.add_parser(
        "split", parents=[common], help="write the dataset split file, or K cross-validation folds",
        description="Without --folds: write system.dataset_split_file from "
                    "training.exclude_fraction_for_validation/_inference (seeded by system.seed). "
                    "With --folds K: write K split files, each holding one fold out for inference.")
    split.add_argument("--folds", type=int, metavar="K", help="number of cross-validation folds")
    split.add_argument("--out", metavar="DIR", help="folder for the fold files (default: <model_dir>/folds)")
    split.add_argument("--overwrite", action="store_true", help="replace existing split files")
    split.set_defaults(func=handlers["split"])
    from niftykit.data.phantom_options import PHANTOMS_HELP, add_phantom_arguments
    phantoms = add_phantom_arguments(commands.add_parser(
        "phantoms", help="write synthetic abdominal CT cases with organ labels",
        description=PHANTOMS_HELP))
    phantoms.add_argument("--debug", action="store_true", help="show tracebacks")
    phantoms.set_defaults(func=handlers["phantoms"])
    networks = commands.add_parser(
        "networks", help="list the networks: window rule, output, parameters",
        description="List every registered network with the window sizes it takes and what it "
                    "outputs; with --params, also its parameter count for its default params.")
    networks.add_argument("--params", action="store_true",
                          help="build each network (default params) and count its parameters")
    networks.add_argument("--channels", type=int, default=1, help="input channels (default 1)")
    networks.add_argument("--classes", type=int, default=2, help="outputs (default 2)")
    networks.add_argument("--debug", action="store_true", help="show tracebacks")
    networks.set_defaults(func=handlers["networks"])
    config = commands.add_parser("config", help="show or convert configs")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_commands.add_parser("show", parents=[common],
                                      help="print the fully resolved config as YAML")
    show.set_defaults(func=handlers["config_show"])
    convert = config_commands.add_parser("convert", help="print a NiftyNet INI as niftykit YAML")
    convert.add_argument("ini", metavar="FILE.ini")
    convert.add_argument("-o", "--output", metavar="FILE.yaml",
                         help="write here (paths rebased to its folder) instead of printing")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output")
    convert.add_argument("--debug", action="store_true", help="show tracebacks")
    convert.set_defaults(func=handlers["config_convert"])
    return parser


def _infer_parser(commands: Any, handlers: Mapping[str, Handler]) -> None:
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
                       help="infer with an exported model instead of a training run (a "
                            "training config here is the same as -c CONFIG); repeat for an "
                            "ensemble (whose members may also be training configs)")
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
    infer.set_defaults(func=handlers["infer"])


def _export_parser(commands: Any, common: argparse.ArgumentParser, handlers: Mapping[str, Handler]) -> None:
    export = commands.add_parser(
        "export", parents=[common], help="write a self-contained model folder for inference",
        description="Write model.keras, a TensorFlow SavedModel, the resolved config and the "
                    "preprocessing files (landmarks, label mapping) to one folder, for "
                    "`niftykit infer --model DIR` and niftykit.api.load(DIR).")
    export.add_argument("--out", metavar="DIR", help="the folder (default <model_dir>/export)")
    export.add_argument("--iter", metavar="N|best", type=iteration,
                        help="checkpoint to export: an iteration, -1 (latest) or best "
                             "(default inference.inference_iter)")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export")
    export.set_defaults(func=handlers["export"])


def _study_parsers(commands: Any, common: argparse.ArgumentParser, handlers: Mapping[str, Handler]) -> None:
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
    crossval.set_defaults(func=handlers["crossval"])
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
    report.set_defaults(func=handlers["report"])
    _prepare_parser(commands, handlers)


def _prepare_parser(commands: Any, handlers: Mapping[str, Handler]) -> None:
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
    prepare.set_defaults(func=handlers["prepare_abdominal"])


def iteration(text: str) -> Any:
    """``--iter`` / ``--inference_iter`` values: a number >= -1 or ``best``."""
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
