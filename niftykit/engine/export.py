"""Export a trained model as a self-contained folder, and infer from one.

``niftykit export -c CONFIG [--out DIR] [--iter N|best]`` writes (atomically:
built in a temporary folder beside ``DIR``, then renamed onto it)::

    DIR/
      export.json              what this is: format, niftykit version, application,
                               network, checkpoint iteration, image sources, input channels
      model.keras              the Keras model (niftykit's registered network classes)
      saved_model/             a TensorFlow SavedModel, signature ``serving_default``:
                               ``image`` (batch, x, y, z, channels) float32 -> network
                               outputs (logits) float32, any window the network takes
      config.yaml              the resolved config with neutral paths: model_dir '.',
                               each input's path_to_search '.', no split or cache files
      histogram_ref_file.txt   Nyúl landmarks and label mapping, when the run has them
      <source>_columns.csv     per-image regression targets: the column names only
                               (a header and one placeholder row), no training values

``niftykit infer --model DIR`` then needs no training config: the network,
its preprocessing and label mapping come from the folder; the images from
``--input`` (files or folders) or from ``-c CONFIG``, whose input sections
give the data's location and whose ``[inference]`` section the settings.
Outputs equal those of ``niftykit infer`` in the training run, voxel for voxel.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from niftykit import __version__
from niftykit.config import Config, load_config
from niftykit.config.dump import config_to_dict, dump_yaml
from niftykit.engine.checkpoint import BEST, Iteration, check_checkpoint, weights_by_path
from niftykit.engine.inference import build_network, restore_network
from niftykit.engine.runtime import import_tensorflow
from niftykit.errors import ConfigError, NiftykitError
from niftykit.io import write_csv, write_text
from niftykit.io.discovery import read_data_csv

__all__ = ["export", "is_export", "read_manifest", "export_config", "load_network",
           "restore_trained", "input_channels", "MANIFEST", "MODEL_FILE", "SAVED_MODEL",
           "CONFIG_FILE", "REFERENCE_FILE"]

log = logging.getLogger("niftykit")

MANIFEST = "export.json"
MODEL_FILE = "model.keras"
SAVED_MODEL = "saved_model"
CONFIG_FILE = "config.yaml"
REFERENCE_FILE = "histogram_ref_file.txt"
FORMAT = "niftykit-export"
FORMAT_VERSION = 1
#: input-section keys that say where a data set is (taken from ``-c`` with ``--model``)
DATA_KEYS = ("path_to_search", "filename_contains", "filename_not_contains",
             "filename_removefromid", "csv_file")


# -- writing -------------------------------------------------------------------------
def _probe_window(app: Any) -> Tuple[int, ...]:
    """The training window, with whole-axis sizes (0 or less) replaced by an accepted size."""
    from niftykit.network import nearest_valid, window_error
    cls, params = app.network_class(), dict(app.config.network.params or {})
    size = 32 if window_error(cls, (32, 1, 1), params) is None else \
        (list(nearest_valid(cls, 32, params)) or [32])[-1]
    return tuple(int(s) if s > 0 else int(size) for s in app.training_window())


def _checkpoint_key(name: str) -> str:
    return f"weights/{name.replace('.', '..')}/.ATTRIBUTES/VARIABLE_VALUE"


def _shapes(model: Any) -> Dict[str, list]:
    return {key: list(variable.shape) for key, variable in weights_by_path(model).items()}


def input_channels(app: Any, tf: Any, prefix: str, window: Sequence[int]) -> int:
    """The number of input channels the checkpoint ``prefix`` was trained with, read off
    its weights: the network is built for 1 (and 2) channels and the first weight whose
    shape depends on them is compared with the stored one.

    Raises:
        NiftykitError: the weights do not tell (the checkpoint does not fit the network).
    """
    stored = {name: list(shape) for name, shape in tf.train.list_variables(prefix)}
    one = _shapes(build_network(app, tf, tuple(window) + (1,)))
    differing = [(k, s) for k, s in one.items()
                 if stored.get(_checkpoint_key(k)) not in (None, s)]
    if not differing:
        return 1
    two = _shapes(build_network(app, tf, tuple(window) + (2,)))
    for key, shape in differing:
        want = stored[_checkpoint_key(key)]
        for a, b, w in zip(shape, two[key], want):
            if b != a and (w - a) % (b - a) == 0 and (w - a) // (b - a) >= 0:
                return 1 + (w - a) // (b - a)
    raise NiftykitError(f"checkpoint {prefix} does not fit network '{app.config.network.name}' "
                        f"with network.params {dict(app.config.network.params or {})} "
                        f"(e.g. {differing[0][0]} is {differing[0][1]} here)")


def restore_trained(app: Any, tf: Any, iteration: Iteration) -> Tuple[Any, int, int]:
    """The network of a training run with the weights of checkpoint ``iteration``
    (-1: the latest; ``"best"``), built for the input channels it was trained with.

    Returns:
        The Keras model, the iteration restored and the number of input channels.

    Raises:
        NiftykitError: no such checkpoint, or one that does not fit the network.
    """
    cfg = app.config
    number = check_checkpoint(cfg.system.model_dir, iteration)
    folder = Path(cfg.system.model_dir) / "models" / (BEST if iteration == BEST else "")
    window = _probe_window(app)
    channels = input_channels(app, tf, str(folder / f"model.ckpt-{number}"), window)
    model, number = restore_network(app, tf, window + (channels,), iteration)
    return model, number, channels


def _neutral_config(config: Config) -> str:
    """The resolved config as YAML, with paths that point nowhere outside the export."""
    data = config_to_dict(config)
    data["system"].update(model_dir=".", dataset_split_file="dataset_split.csv", cache_dir=None)
    data["network"]["histogram_ref_file"] = REFERENCE_FILE
    data["training"]["restore_from"] = None
    data["inference"].update(save_seg_dir="output", inference_iter=-1)
    data["evaluation"]["save_csv_dir"] = "evaluation"
    for name, section in data["inputs"].items():
        columns = f"{name}_columns.csv" if section.get("csv_data_file") else None
        section.update(path_to_search=["."], csv_file=None, csv_data_file=columns)
    source = Path(config.source).name if config.source else "a config"
    header = (f"# niftykit {__version__} export of {source}: the model's settings.\n"
              "# Paths are placeholders: `niftykit infer --model <this folder> --input ...` "
              "(or -c DATA_CONFIG)\n# says where the images are and --out where outputs go.\n")
    return header + dump_yaml(data)


def _write_columns(config: Config, folder: Path) -> None:
    """For each ``csv_data_file``: its column names and one placeholder row, no values."""
    for name, section in config.inputs.items():
        if section.csv_data_file and Path(section.csv_data_file).is_file():
            table = read_data_csv(section.csv_data_file, source=name)
            write_csv(folder / f"{name}_columns.csv", [["placeholder"] + [0] * len(table.columns)],
                      header=["subject_id", *table.columns], overwrite=True)


def _served_window(app: Any) -> Tuple[Optional[int], ...]:
    """The SavedModel's spatial input sizes: any (None) unless the network is built for
    one window shape (``fixed_window``, e.g. ``dense_vnet``), then its inference window."""
    if not getattr(app.network_class(), "fixed_window", False):
        return (None, None, None)
    window = tuple(app.config.inference.spatial_window_size or ()) or app.training_window()
    return tuple(int(n) if n > 0 else None for n in window)


def _saved_model(model: Any, tf: Any, channels: int, path: Path,
                 window: Sequence[Optional[int]] = (None, None, None)) -> None:
    import keras
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, *window, channels], tf.float32, name="image")
    archive.add_endpoint("serve", lambda image: tf.cast(model(image, training=False), tf.float32),
                         input_signature=[spec])
    archive.write_out(str(path), verbose=False)


def _check_reference(config: Config, task: Any) -> Optional[Path]:
    """``network.histogram_ref_file`` if it exists; an error if preprocessing needs it."""
    ref = Path(config.network.histogram_ref_file)
    if ref.is_file():
        return ref
    if config.network.normalisation or getattr(task, "label_normalisation", False):
        raise NiftykitError(f"{ref} (network.histogram_ref_file) is missing: the model's "
                            "preprocessing needs its landmarks or label mapping; it is written "
                            "by `niftykit train`")
    return None


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` onto ``out``, replacing an earlier export (checked before)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise NiftykitError(f"{out} exists; pass --overwrite to replace it")
    if not is_export(out) and (not out.is_dir() or any(out.iterdir())):
        raise NiftykitError(f"{out} exists and is not a niftykit export; --overwrite replaces "
                            "only an earlier export (choose another --out)")


def export(app: Any, out: Optional[Path] = None, *, iteration: Optional[Iteration] = None,
           overwrite: bool = False, debug: bool = False) -> Path:
    """Write the self-contained export folder of a training run (module docstring).

    Args:
        app: the application of the training config.
        out: the folder to write; default ``<model_dir>/export``.
        iteration: the checkpoint (-1 latest, ``"best"``); default ``inference.inference_iter``.
        overwrite: replace an earlier export at ``out``.
        debug: keep TensorFlow's start-up logs.

    Returns:
        The export folder.

    Raises:
        NiftykitError: no such checkpoint, a missing ``histogram_ref_file`` that
            preprocessing needs, or ``out`` exists (without ``overwrite``, or not an export).
    """
    cfg = app.config
    if list(app.stages()):
        raise NiftykitError(f"{cfg.source}: application '{cfg.application}' runs "
                            f"{len(list(app.stages())) + 1} networks (stages) and an export holds "
                            "one; infer with `niftykit infer -c CONFIG` instead")
    iteration = cfg.inference.inference_iter if iteration is None else iteration
    number = check_checkpoint(cfg.system.model_dir, iteration)
    out = Path(out if out is not None else Path(cfg.system.model_dir) / "export").absolute()
    _check_target(out, overwrite)
    reference = _check_reference(cfg, app.task)
    tf = import_tensorflow(cfg.system.cuda_devices, debug)
    model, number, channels = restore_trained(app, tf, iteration)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        model.save(tmp / MODEL_FILE)
        _saved_model(model, tf, channels, tmp / SAVED_MODEL, _served_window(app))
        write_text(tmp / CONFIG_FILE, _neutral_config(cfg))
        if reference is not None:
            shutil.copyfile(reference, tmp / REFERENCE_FILE)
        _write_columns(cfg, tmp)
        manifest = dict(format=FORMAT, format_version=FORMAT_VERSION, niftykit=__version__,
                        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        application=cfg.application, network=cfg.network.name,
                        iteration=number, checkpoint=str(iteration),
                        model_dir=str(cfg.system.model_dir),
                        image_sources=list(app.input_sources("inference")),
                        input_channels=channels, precision=cfg.network.precision,
                        files=sorted(p.name for p in tmp.iterdir()) + [MANIFEST])
        write_text(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        load_config(tmp / CONFIG_FILE)  # the written config loads
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s (iteration %d, %d input channel%s) -> %s", cfg.network.name, number,
             channels, "" if channels == 1 else "s", out)
    return out


# -- reading ----------------------------------------------------------------------------
def read_manifest(folder: Path) -> Dict[str, Any]:
    """The export's ``export.json`` (its format checked).

    Raises:
        ConfigError: not a folder, no (valid) manifest, or a newer export format.
    """
    hint = "make one with `niftykit export -c CONFIG`"
    if not folder.is_dir():
        raise ConfigError(f"--model {folder}: no such folder; {hint}")
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"--model {folder}: not a niftykit export (no readable {MANIFEST}); "
                          f"{hint}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"--model {folder}: {path} is not a niftykit export manifest; {hint}")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise ConfigError(f"--model {folder}: exported by niftykit {manifest.get('niftykit')} in "
                          f"a newer format (version {manifest.get('format_version')}); upgrade "
                          "niftykit")
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (folder / name).exists():
            raise ConfigError(f"--model {folder}: the export is incomplete ({name} is missing)")
    return manifest


def is_export(folder: Any) -> bool:
    """Whether ``folder`` holds a niftykit export (a valid ``export.json``)."""
    try:
        read_manifest(Path(folder))
    except ConfigError:
        return False
    return True


def export_config(folder: Any, data: Optional[Config] = None,
                  overrides: Sequence[str] = ()) -> Config:
    """The config of an export, ready for inference.

    Args:
        folder: the export folder.
        data: a config saying where the data are: its input sections' location keys
            (``path_to_search``, ``filename_contains``, ``filename_not_contains``,
            ``filename_removefromid``, ``csv_file``) for the model's image sources, its
            ``[inference]`` section and its split file replace the export's. None keeps
            the export's (the images then come from ``--input``).
        overrides: ``section.key=value`` overrides of the export's config (used only
            without ``data``, whose own overrides were applied when it was loaded).

    Raises:
        ConfigError: not an export, or ``data`` lacks one of the model's image sources.
    """
    folder = Path(folder).absolute()
    manifest = read_manifest(folder)
    config = load_config(folder / CONFIG_FILE, () if data is not None else overrides)
    if data is None:
        return config
    for name in manifest.get("image_sources", []):
        if name not in data.inputs:
            raise ConfigError(f"{data.source}: [inputs] {name}: the model in {folder} reads the "
                              f"input section(s) {', '.join(manifest['image_sources'])}; define "
                              f"'{name}' with its path_to_search")
        for key in DATA_KEYS:
            setattr(config.inputs[name], key, getattr(data.inputs[name], key))
    config.inference = dataclasses.replace(data.inference)
    config.system.dataset_split_file = data.system.dataset_split_file
    config.system.strict_subjects = data.system.strict_subjects
    return config


def load_network(folder: Any, config: Config, debug: bool = False) -> Any:
    """The Keras model of an export (``model.keras``), for :func:`~niftykit.engine.infer`."""
    folder = Path(folder).absolute()
    manifest = read_manifest(folder)
    import_tensorflow(config.system.cuda_devices, debug)
    import keras

    from niftykit.network import NETWORKS
    cls = NETWORKS.get(config.network.name)  # imports (and so registers) the class
    try:
        model = keras.models.load_model(folder / MODEL_FILE, compile=False,
                                        custom_objects={cls.__name__: cls})
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds on a bad file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NiftykitError(f"--model {folder}: cannot load {MODEL_FILE}: {reason}") from exc
    log.info("network %s from export %s (iteration %s)", config.network.name, folder,
             manifest.get("iteration"))
    return model
