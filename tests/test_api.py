"""niftykit.api: train, infer, evaluate, export and predict from Python, as the CLI does."""

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from niftykit import api
from niftykit.cli import main
from niftykit.data import make_shapes
from niftykit.errors import ConfigError, DataError, NiftykitError
from niftykit.io import Image, read_image

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 20-iteration run trained, inferred and exported through the API."""
    root = tmp_path_factory.mktemp("api")
    data, model = root / "data", root / "model"
    make_shapes(data, n_subjects=6, shape=(16, 16, 16), seed=5)
    where = dict(inputs={"image": {"path_to_search": data}, "label": {"path_to_search": data}},
                 system={"model_dir": model})
    checkpoints = api.train(CONFIG, max_iter=20, save_every_n=10, validation_every_n=10,
                            validation_max_iter=1, **where)
    written = api.infer(CONFIG, **where)
    folder = api.export(CONFIG, root / "export", **where)
    return data, model, where, checkpoints, written, folder


def test_train_and_infer_return_what_they_wrote(run):
    data, model, _, checkpoints, written, _ = run
    assert checkpoints == model / "models"
    assert (checkpoints / "model.ckpt-20.index").exists()
    assert sorted(p.name for p in written) == sorted(
        p.name for p in (model / "segmentation").glob("*_niftynet_out.nii.gz"))
    assert len(written) == 2


def test_evaluate_returns_the_summary(run):
    model, where = run[1], run[2]
    summary = api.evaluate(CONFIG, overwrite=True, **where)
    assert summary.csv == model / "evaluation" / "evaluation.csv"
    assert summary.unit == "label" and set(summary.stats) == {1, 2}
    dice = summary.stats[1]["dice"]
    assert set(dice) == {"n", "mean", "sd", "median"} and dice["n"] == 2
    assert 0.0 <= dice["median"] <= 1.0
    assert "median" in summary.table().splitlines()[0]


def test_predict_on_arrays_equals_the_cli_output(run, tmp_path):
    data, model, _, _, written, folder = run
    assert (folder / "export.json").exists()
    exported = api.load(folder)
    from_run = api.load(model, iteration=-1)  # the model_dir's own config.yaml
    for path in written:
        sid = path.name.replace("_niftynet_out.nii.gz", "")
        source = nib.load(str(data / f"{sid}_image.nii.gz"))
        expected = np.asarray(nib.load(str(path)).dataobj)
        array = np.asarray(source.dataobj)
        for loaded in (exported, from_run):
            labels = loaded.predict(array, affine=source.affine)
            assert labels.shape == array.shape and labels.dtype == expected.dtype
            np.testing.assert_array_equal(labels, expected)
        image = exported.predict(read_image(data / f"{sid}_image.nii.gz"))
        assert isinstance(image, Image)
        np.testing.assert_array_equal(image.array[..., 0], expected)
        np.testing.assert_allclose(image.affine, source.affine)
        from_file = exported.predict(data / f"{sid}_image.nii.gz")
        np.testing.assert_array_equal(from_file.array[..., 0], expected)


def test_predict_probabilities_and_infer_from_an_export(run, tmp_path):
    data, written, folder = run[0], run[4], run[5]
    source = data / written[0].name.replace("_niftynet_out", "_image")
    probabilities = api.load(folder, segmentation={"output_prob": True}).predict(
        nib.load(str(source)).get_fdata(dtype=np.float32))
    assert probabilities.shape == (16, 16, 16, 3)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-4)
    files = api.infer(folder, images=[data], out=tmp_path / "out")
    assert len(files) == 6
    for path in written:
        np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "out" / path.name))
                                                 .dataobj),
                                      np.asarray(nib.load(str(path)).dataobj))


def test_errors(run, tmp_path):
    data, model = run[0], run[1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither a niftykit export"):
        api.load(tmp_path / "empty")
    with pytest.raises(ConfigError, match="max_itr"):
        api.train(CONFIG, max_itr=3)
    loaded = api.load(model)
    with pytest.raises(DataError, match="expected an array"):
        loaded.predict(np.zeros((4, 4, 4, 1, 1)))
    with pytest.raises(NiftykitError, match="no checkpoint"):
        api.load(CONFIG, system={"model_dir": tmp_path / "nothing"})
    assert main(["infer", "--model", str(tmp_path / "empty"), "--input", str(data)]) == 2


def test_importing_the_api_does_not_import_tensorflow():
    code = ("import sys\nimport niftykit.api\n"
            "print('TF' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'NO-TF')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "NO-TF"
