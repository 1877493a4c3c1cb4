"""niftykit from Python: train, infer, evaluate, export, and predict on arrays in memory.

The functions do what the commands of the same names do and return what they
wrote; user errors raise :class:`~niftykit.errors.NiftykitError` (with the
message the command line would print) instead of exiting. Importing this
module does not import TensorFlow; the functions do.

Example (a notebook)::

    import nibabel as nib
    from niftykit import api

    run = api.train("configs/quickstart.yaml", max_iter=50)          # <model_dir>/models
    api.infer("configs/quickstart.yaml", inference_iter="best")      # files written
    print(api.evaluate("configs/quickstart.yaml", overwrite=True).table())
    folder = api.export("configs/quickstart.yaml")                   # <model_dir>/export

    model = api.load(folder)              # or a config, or a model_dir
    scan = nib.load("case07_image.nii.gz")
    labels = model.predict(scan.get_fdata(), affine=scan.affine)     # (x, y, z) on scan's grid

Settings are given as keyword arguments, NiftyNet's bare keys (``max_iter=50``)
or one mapping per section (``training={"lr": 1e-3}``,
``inputs={"image": {"path_to_search": "data/"}}``), or as ``overrides``, the
command line's ``section.key=value`` strings.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from niftykit.application import make_application
from niftykit.errors import ConfigError, DataError
from niftykit.io import Image, Subject, read_image, write_image

__all__ = ["Model", "load", "train", "infer", "ensemble", "evaluate", "export"]

log = logging.getLogger("niftykit")

PathLike = Union[str, "os.PathLike[str]"]
#: an input to :meth:`Model.predict`: an array ``(x, y, z[, c])``, an ``Image`` or a file
ImageLike = Union[np.ndarray, Image, PathLike]


# -- configs ----------------------------------------------------------------------------
def _text(value: Any) -> str:
    """A Python value as override text (YAML scalars and flow lists)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def _flatten(prefix: str, value: Any, out: List[str]) -> None:
    if isinstance(value, Mapping) and not prefix.endswith(".params") and \
            not prefix.endswith("_args"):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out.append(f"{prefix}={_text(value)}")


def _overrides(overrides: Sequence[str], settings: Mapping[str, Any]) -> List[str]:
    found = list(overrides)
    for key, value in settings.items():
        _flatten(key, value, found)
    return found


def _config(config: Any, overrides: Sequence[str] = (),
            settings: Optional[Mapping[str, Any]] = None, check: bool = True) -> Any:
    """A :class:`~niftykit.config.Config` from a path (with overrides) or a Config."""
    from niftykit.config import Config, check_supported, load_config
    extra = _overrides(overrides, settings or {})
    if isinstance(config, Config):
        if extra:
            raise ConfigError("api: overrides need a config file; change the Config object's "
                              "fields instead")
        loaded = config
    else:
        loaded = load_config(config, extra)
    if check:
        check_supported(loaded)
    return loaded


# -- the commands -----------------------------------------------------------------------
def train(config: Any, *, overwrite: bool = False, overrides: Sequence[str] = (),
          **settings: Any) -> Path:
    """Train the network of ``config`` (a YAML/INI file or a loaded Config).

    Returns:
        The checkpoint folder ``<model_dir>/models``.
    """
    from niftykit.engine import train as run
    return Path(run(make_application(_config(config, overrides, settings)), overwrite=overwrite))


def infer(config: Any, *, images: Optional[Sequence[PathLike]] = None,
          out: Optional[PathLike] = None, overwrite: bool = False,
          overrides: Sequence[str] = (), **settings: Any) -> List[Path]:
    """``niftykit infer``: the inference subjects (or the files and folders ``images``)
    through the checkpoint ``inference.inference_iter`` of a training config, or through
    an export when ``config`` is an export folder.

    Args:
        config: a config file, a Config, or an export folder.
        images: image files or folders to infer instead of the config's subjects
            (``--input``; required for an export folder). (``inputs=`` is the config's
            input sections, as for the other functions.)
        out: the output folder (default ``inference.save_seg_dir``; for an export
            ``./output``).

    Returns:
        The files written, one per subject.
    """
    from niftykit.engine import infer as run
    from niftykit.engine.inference import input_subjects
    model = load(config, overrides=overrides, **settings)
    if model.export_dir is not None and images is None:
        raise ConfigError(f"api.infer: {model.export_dir} is an export; give the images with "
                          "images=[...]")
    cfg = model.config
    if out is not None or model.export_dir is not None:
        cfg.inference.save_seg_dir = Path(out if out is not None else "output").absolute()
    subjects = input_subjects(model.app, images) if images is not None else None
    return run(model.app, overwrite=overwrite, model=model._network, subjects=subjects)


def ensemble(models: Sequence[Any], *, images: Optional[Sequence[PathLike]] = None,
             out: Optional[PathLike] = None, weights: Optional[Sequence[float]] = None,
             fusion: str = "mean", overwrite: bool = False, overrides: Sequence[str] = (),
             **settings: Any) -> List[Path]:
    """``niftykit infer --model A --model B ...``: several models' class probabilities
    fused on each input image's grid (see :mod:`niftykit.engine.ensemble`).

    Args:
        models: export folders, training configs or model_dirs, as for :func:`load`; the
            first one's settings name the outputs.
        images: image files or folders (required when a model is an export folder).
        out: the output folder (default the first model's ``inference.save_seg_dir``; for
            an export ``./output``).
        weights: one weight per model (normalised; default equal).
        fusion: ``mean`` of the probabilities or weighted majority ``vote`` of the labels.

    Returns:
        The files written, one per subject.
    """
    from niftykit.engine.ensemble import infer_ensemble
    from niftykit.engine.inference import input_subjects
    loaded = [load(model, overrides=overrides, **settings) for model in models]
    if images is None and any(m.export_dir is not None for m in loaded):
        raise ConfigError("api.ensemble: an export folder among the models needs the images: "
                          "images=[...]")
    if out is not None or loaded[0].export_dir is not None:
        loaded[0].config.inference.save_seg_dir = Path(out if out is not None
                                                       else "output").absolute()
    subjects = input_subjects(loaded[0].app, images) if images is not None else None
    return infer_ensemble([m.app for m in loaded], [str(m) for m in models],
                          models=[m.network for m in loaded], weights=weights, fusion=fusion,
                          overwrite=overwrite, subjects=subjects)


def evaluate(config: Any, *, overwrite: bool = False, overrides: Sequence[str] = (),
             **settings: Any) -> Any:
    """``niftykit evaluate``: score the inferred outputs against the references.

    Returns:
        An :class:`~niftykit.engine.evaluation.EvaluationSummary`: ``.csv`` (the
        per-subject table), ``.stats`` (unit -> metric -> n, mean, sd, median) and
        ``.table()`` (the text printed by the command).
    """
    from niftykit.engine.evaluation import run_evaluation
    return run_evaluation(make_application(_config(config, overrides, settings)),
                          overwrite=overwrite)


def export(config: Any, out: Optional[PathLike] = None, *, iteration: Any = None,
           overwrite: bool = False, overrides: Sequence[str] = (), **settings: Any) -> Path:
    """``niftykit export``: a self-contained model folder (see :mod:`niftykit.engine.export`).

    Args:
        config: the training config (file or Config).
        out: the folder (default ``<model_dir>/export``).
        iteration: checkpoint iteration, -1 (latest) or ``"best"``; default
            ``inference.inference_iter``.

    Returns:
        The export folder.
    """
    from niftykit.engine.export import export as run
    return run(make_application(_config(config, overrides, settings)),
               Path(out) if out is not None else None, iteration=iteration, overwrite=overwrite)


# -- a model in memory --------------------------------------------------------------------
def load(source: Any, *, iteration: Any = None, overrides: Sequence[str] = (),
         **settings: Any) -> "Model":
    """A trained model, ready to :meth:`~Model.predict`.

    Args:
        source: an export folder (from :func:`export`), a training config (file or
            Config), or a training run's ``model_dir`` (its ``config.yaml``).
        iteration: for a training run, the checkpoint (default ``inference.inference_iter``:
            -1 latest, N, or ``"best"``).
        overrides, settings: config overrides (e.g. ``tta="flip"``,
            ``segmentation={"output_prob": True}``).

    Raises:
        NiftykitError: no such file, folder or checkpoint.
    """
    from niftykit.config import Config
    from niftykit.engine.export import export_config, is_export, load_network, read_manifest
    if not isinstance(source, Config) and Path(source).is_dir():
        folder = Path(source).absolute()
        if is_export(folder):
            config = export_config(folder, None, _overrides(overrides, settings))
            _config(config)
            model = Model(config, network=load_network(folder, config), export_dir=folder)
            model.iteration = read_manifest(folder).get("iteration")
            return model
        if not (folder / "config.yaml").is_file():
            raise ConfigError(f"{folder}: neither a niftykit export (export.json, from "
                              "`niftykit export`) nor a training run's model_dir (config.yaml)")
        source = folder / "config.yaml"
    config = _config(source, overrides, settings)
    if iteration is not None:
        config.inference.inference_iter = iteration
    return Model(config)


class Model:
    """A trained network with its preprocessing and inference settings.

    Made by :func:`load`. :meth:`predict` runs exactly what ``niftykit infer``
    runs for one subject (preprocessing, sliding windows, aggregation, test-time
    augmentation, restoring the input's grid and label codes).

    Attributes:
        config: the config in use (change ``config.inference`` fields to change
            how it infers).
        app: the application.
        export_dir: the export folder, or None for a training run.
        iteration: the checkpoint iteration of the weights.
    """

    def __init__(self, config: Any, network: Any = None,
                 export_dir: Optional[Path] = None) -> None:
        from niftykit.engine.runtime import import_tensorflow
        self.config, self.export_dir = config, export_dir
        self.app = make_application(config)
        self._tf = import_tensorflow(config.system.cuda_devices)
        self._network = network
        self.iteration: Optional[int] = None
        if network is None:
            self._restore()
        self._predictor: Any = None
        self._prepared = False

    def _restore(self) -> None:
        from niftykit.engine.export import restore_trained
        self._network, self.iteration, _ = restore_trained(
            self.app, self._tf, self.config.inference.inference_iter)

    @property
    def network(self) -> Any:
        """The Keras model (weights restored)."""
        return self._network

    def __repr__(self) -> str:
        where = self.export_dir or self.config.system.model_dir
        return (f"<niftykit Model {self.config.application}/{self.config.network.name} from "
                f"{where}, iteration {self.iteration}>")

    def _images(self, image: Any) -> Dict[str, Any]:
        sources = self.app.input_sources("inference")
        if isinstance(image, Mapping):
            missing = [s for s in sources if s not in image]
            if missing:
                raise DataError(f"predict: no image for source(s) {', '.join(missing)} "
                                f"(the model reads {', '.join(sources)})")
            return {name: image[name] for name in sources}
        if len(sources) > 1:
            raise DataError(f"predict: the model reads {len(sources)} image sources; give "
                            f"{{{', '.join(repr(s) for s in sources)}: ...}}")
        return {sources[0]: image}

    def predict(self, image: Any, affine: Optional[np.ndarray] = None) -> Any:
        """Infer one subject.

        Args:
            image: a numpy array ``(x, y, z)`` or ``(x, y, z, channels)`` (2-D: ``(x, y)``),
                an :class:`~niftykit.io.Image`, or an image file; for a model of several
                image sources, a mapping source name -> one of those.
            affine: ``(4, 4)`` voxel-to-world matrix in mm for an array (default: identity,
                1 mm voxels); it decides reorientation and resampling as a file's header does.

        Returns:
            On the input's grid: for an array input, a numpy array (label map ``(x, y, z)``,
            or ``(x, y, z, k)`` probabilities/values); for an ``Image`` or a file, an
            :class:`~niftykit.io.Image` with the input's affine. Per-image outputs
            (classification, per-image regression) are a dict of the output CSV's row.
        """
        images = self._images(image)
        first = next(iter(images.values()))
        with tempfile.TemporaryDirectory(prefix="niftykit-predict-") as tmp:
            subject = Subject("subject", {name: self._file(item, affine, Path(tmp), name)
                                          for name, item in images.items()})
            path = self._infer(subject, Path(tmp) / "out")
            return self._result(Path(path), first, affine)

    def _file(self, item: Any, affine: Optional[np.ndarray], folder: Path, name: str) -> Path:
        """A file for one input: the path itself, or the array/Image written as NIfTI
        (float32 voxels are stored exactly)."""
        if isinstance(item, (str, os.PathLike)):
            if not Path(item).exists():
                raise DataError(f"predict: {item}: no such file")
            return Path(item)
        if isinstance(item, Image):
            array, grid, codes = item.array, item.affine, item.xform_codes
        else:
            array, codes = np.asarray(item), None
            grid = np.eye(4) if affine is None else np.asarray(affine, np.float64)
            if array.ndim == 2:
                array = array[:, :, None]
        if array.ndim not in (3, 4):
            raise DataError(f"predict: expected an array (x, y, z) or (x, y, z, channels), "
                            f"got shape {array.shape}")
        return write_image(array, grid, folder / f"{name}.nii", xform_codes=codes)

    def _infer(self, subject: Subject, out: Path) -> Any:
        from niftykit.engine.inference import Predictor
        from niftykit.engine.stages import attach_stages
        if not self._prepared:
            attach_stages(self.app, self._tf)
            self.app.prepare("inference", [subject])
            self._prepared = True
        if self._predictor is None:
            self._predictor = Predictor(self.app, self._tf, self._network)
        kept, self.config.inference.save_seg_dir = self.config.inference.save_seg_dir, out
        try:
            return self.app.infer_subject(subject, self._predictor, overwrite=True)
        finally:
            self.config.inference.save_seg_dir = kept

    @staticmethod
    def _result(path: Path, first: Any, affine: Optional[np.ndarray]) -> Any:
        if path.suffix == ".csv":
            import csv
            with path.open(newline="", encoding="utf-8") as handle:
                row = next(csv.DictReader(handle))
            row.pop("subject_id", None)
            return {key: _value(text) for key, text in row.items()}
        import nibabel as nib
        array = np.asarray(nib.load(str(path)).dataobj).copy()
        if isinstance(first, np.ndarray):
            return array.reshape(first.shape[:2] + array.shape[3:]) if first.ndim == 2 else array
        result = read_image(path, "label" if array.dtype.kind in "iu" else "image")
        if isinstance(first, Image):  # its own affine, not the NIfTI header's float32 copy
            return Image(result.array, first.affine, None, first.xform_codes)
        return Image(result.array, result.affine, None, result.xform_codes)


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
