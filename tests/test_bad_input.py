"""Bad input through the CLI: exit status 2, one line naming the file and what is wrong,
and no checkpoint, log or output written."""

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from niftykit.cli import main
from niftykit.data import make_shapes



@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    make_shapes(folder, n_subjects=3, shape=(16, 16, 16), seed=2)
    return folder


@pytest.fixture
def train(config_args):
    """Two iterations, every subject a training subject."""
    return lambda data, model, *extra: main(["train", *config_args(
        data, model, "--max_iter", "2", "--validation_every_n", "-1",
        "--set", "training.exclude_fraction_for_validation=0",
        "--set", "training.exclude_fraction_for_inference=0", *extra)])


def _replace(path: Path, array: np.ndarray, affine=None) -> None:
    image = nib.load(path)
    nib.save(nib.Nifti1Image(array, image.affine if affine is None else affine), path)


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _label(data: Path) -> Path:
    return data / "case01_label.nii.gz"


def _image(data: Path) -> Path:
    return data / "case01_image.nii.gz"


BREAKERS = {
    "truncated_gz": (lambda d: _truncate(_image(d)), "case01_image.nii.gz", "truncated"),
    "zero_bytes": (lambda d: _image(d).write_bytes(b""), "case01_image.nii.gz", "empty file"),
    "not_an_image": (lambda d: _image(d).write_bytes(gzip.compress(b"hello, not a NIfTI")),
                     "case01_image.nii.gz", "cannot read"),
    "nan_voxels": (lambda d: _replace(_image(d), np.full((16, 16, 16), np.nan, np.float32)),
                   "case01_image.nii.gz", "NaN/Inf"),
    "label_4d": (lambda d: _replace(_label(d), np.zeros((16, 16, 16, 2), np.uint8)),
                 "case01_label.nii.gz", "one channel"),
    "shape_mismatch": (lambda d: _replace(_label(d), np.zeros((16, 16, 12), np.uint8)),
                       "case01_label.nii.gz", "spatial shapes"),
    "affine_mismatch": (lambda d: _replace(_label(d), np.zeros((16, 16, 16), np.uint8), np.eye(4)),
                        "case01_label.nii.gz", "affines differ"),
    "non_integer_labels": (lambda d: _replace(_label(d), np.full((16, 16, 16), 0.5, np.float32)),
                           "case01_label.nii.gz", "non-integral"),
    "label_out_of_range": (lambda d: _replace(_label(d), np.full((16, 16, 16), 9, np.uint8)),
                           "case01_label.nii.gz", "num_classes=3"),
}


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_bad_file_stops_training_before_anything_is_written(case, data, tmp_path, capsys, train):
    breaker, name, words = BREAKERS[case]
    breaker(data)
    model = tmp_path / "model"
    assert train(data, model) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("niftykit: error: ")
    assert name in err[0] and words in err[0], err[0]
    assert not (model / "models").exists() and not (model / "logs").exists()


def test_nan_voxels_replaced_when_asked(data, tmp_path, train):
    array = nib.load(_image(data)).get_fdata().astype(np.float32)
    array[0, 0, :] = np.nan
    _replace(_image(data), array)
    assert train(data, tmp_path / "model", "--set", "inputs.image.replace_nonfinite=0") == 0


def test_missing_source_warns_or_fails_under_strict(data, tmp_path, capsys, train):
    _label(data).unlink()
    assert train(data, tmp_path / "lenient") == 0
    assert "case01" in capsys.readouterr().err
    assert train(data, tmp_path / "strict", "--set", "system.strict_subjects=true") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "case01" in err[0]


def test_unwritable_output_folder(data, tmp_path, capsys, train, config_args):
    model = tmp_path / "model"
    assert train(data, model) == 0
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["infer", *config_args(data, model, "--set",
                                       f"inference.save_seg_dir={blocker / 'out'}")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0] and "a_file" in err[0]
