"""niftykit/engine/export.py through the CLI: export -> infer --model equals infer from the run.

One tiny run (16^3 volumes, a 3-level U-Net, 20 iterations with validation, Nyúl
normalisation and label_normalisation, so that histogram_ref_file matters) serves
every test; inference uses 8^3 windows with Gaussian blending, so that several
windows per volume are stitched.
"""

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from niftykit.cli import main
from niftykit.data import make_shapes

SETTINGS = ("--set", "network.normalisation=true", "--set", "segmentation.label_normalisation=true",
            "--set", "inference.spatial_window_size=[8,8,8]")


@pytest.fixture(scope="module")
def run(tmp_path_factory, config_args):
    root = tmp_path_factory.mktemp("export")
    data, model = root / "data", root / "model"
    make_shapes(data, n_subjects=6, shape=(16, 16, 16), seed=3)

    def args(*extra):
        return config_args(data, model, *SETTINGS, *extra)
    assert main(["train", *args("--max_iter", "20", "--save_every_n", "10",
                                "--validation_every_n", "10", "--validation_max_iter", "1")]) == 0
    assert main(["infer", *args()]) == 0
    assert main(["export", *args()]) == 0
    return root, data, model, args


def _labels(path):
    return np.asarray(nib.load(str(path)).dataobj)


def _inferred(folder):
    return dict(csv.reader((folder / "inferred.csv").open()))


def test_export_folder_is_self_contained(run):
    root, _, model, _ = run
    folder = model / "export"
    for name in ("export.json", "model.keras", "config.yaml", "histogram_ref_file.txt",
                 "saved_model/saved_model.pb"):
        assert (folder / name).exists(), name
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["format"] == "niftykit-export"
    assert manifest["iteration"] == 20 and manifest["input_channels"] == 1
    assert manifest["image_sources"] == ["image"]
    assert (folder / "histogram_ref_file.txt").read_text() == \
        (model / "histogram_ref_file.txt").read_text()
    text = (folder / "config.yaml").read_text()
    assert str(root) not in text  # no path of the run or of its data
    assert "model_dir: ." in text
    assert not [p for p in model.iterdir() if p.name.startswith(".export")]  # no temporary left


def test_infer_from_export_equals_infer_from_training_run(run, tmp_path):
    _, data, model, args = run
    reference = _inferred(model / "segmentation")
    assert len(reference) == 2
    out_folder, out_files, out_config = tmp_path / "folder", tmp_path / "files", tmp_path / "cfg"
    export = str(model / "export")
    assert main(["infer", "--model", export, "--input", str(data), "--out", str(out_folder)]) == 0
    files = [str(data / f"{sid}_image.nii.gz") for sid in reference]
    assert main(["infer", "--model", export, "--input", *files, "--out", str(out_files)]) == 0
    assert main(["infer", "--model", export, *args("--out", str(out_config))]) == 0
    out_run = tmp_path / "run"  # the training run, on files given with --input
    assert main(["infer", *args("--input", *files, "--out", str(out_run))]) == 0
    assert len(_inferred(out_folder)) == 6  # every image of the folder
    assert set(_inferred(out_files)) == set(_inferred(out_config)) == set(reference)
    for sid, path in reference.items():
        expected = _labels(path)
        assert set(np.unique(expected)) <= {0, 1, 2}
        for folder in (out_folder, out_files, out_config, out_run):
            written = folder / f"{sid}_niftynet_out.nii.gz"
            np.testing.assert_array_equal(_labels(written), expected)
            np.testing.assert_array_equal(nib.load(str(written)).affine, nib.load(path).affine)


def test_saved_model_gives_the_keras_outputs(run):
    import keras
    import tensorflow as tf

    from niftykit.network import NETWORKS
    folder = run[2] / "export"
    NETWORKS.get("unet")
    network = keras.models.load_model(folder / "model.keras", compile=False)
    serving = tf.saved_model.load(str(folder / "saved_model")).signatures["serving_default"]
    windows = np.random.default_rng(0).normal(size=(2, 8, 16, 12, 1)).astype(np.float32)
    (outputs,) = serving(image=tf.constant(windows)).values()
    assert outputs.shape == (2, 8, 16, 12, 3)
    np.testing.assert_allclose(outputs.numpy(), network(windows, training=False).numpy(),
                               atol=1e-5)


def test_inference_iter_best(run, tmp_path, capsys):
    _, data, model, args = run
    best = int(next((model / "models" / "best").glob("model.ckpt-*.index")).name.split("-")[1]
               .split(".")[0])
    assert main(["infer", *args("--inference_iter", "bset")]) == 2
    assert "did you mean 'best'" in _one_line_error(capsys)
    capsys.readouterr()
    assert main(["infer", *args("--inference_iter", "best", "--out", str(tmp_path / "best"))]) == 0
    assert f"restored from the checkpoint of iteration {best}" in capsys.readouterr().out
    assert main(["export", *args("--iter", "best", "--out", str(tmp_path / "exp"))]) == 0
    assert json.loads((tmp_path / "exp" / "export.json").read_text())["iteration"] == best
    assert main(["infer", "--model", str(tmp_path / "exp"), "--input", str(data),
                 "--out", str(tmp_path / "exp_out")]) == 0
    for sid in _inferred(tmp_path / "best"):
        name = f"{sid}_niftynet_out.nii.gz"
        np.testing.assert_array_equal(_labels(tmp_path / "exp_out" / name),
                                      _labels(tmp_path / "best" / name))


def test_export_does_not_overwrite_silently(run, capsys):
    args = run[3]
    assert main(["export", *args()]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["export", *args("--overwrite")]) == 0


def test_evaluate_prints_mean_sd_median(run, capsys):
    args = run[3]
    capsys.readouterr()
    assert main(["evaluate", *args("--overwrite")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("label"))
    assert header.split() == ["label", "metric", "n", "mean", "sd", "median"]
    rows = [line.split() for line in out.splitlines() if line.split()[:2] == ["1", "dice"]]
    assert len(rows) == 1 and rows[0][2] == "2"
    scores = [float(r["dice"]) for r in csv.DictReader((run[2] / "evaluation" /
                                                        "evaluation.csv").open())
              if r["label"] == "1"]
    assert float(rows[0][3]) == pytest.approx(np.mean(scores), abs=1e-4)
    assert float(rows[0][5]) == pytest.approx(np.median(scores), abs=1e-4)
    assert float(rows[0][4]) == pytest.approx(np.std(scores, ddof=1), abs=1e-4)


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_export_without_checkpoint_is_a_one_line_error(tmp_path, capsys, config_args):
    make_shapes(tmp_path / "data", n_subjects=2, shape=(16, 16, 16))
    assert main(["export", *config_args(tmp_path / "data", tmp_path / "model")]) == 2
    assert "no checkpoint" in _one_line_error(capsys)
    assert not (tmp_path / "model" / "export").exists()


def test_model_that_is_not_an_export(run, tmp_path, capsys):
    data, model = run[1], run[2]
    assert main(["infer", "--model", str(model), "--input", str(data),
                 "--out", str(tmp_path / "out")]) == 2
    assert "not a niftykit export" in _one_line_error(capsys)
    assert main(["infer", "--model", str(tmp_path / "missing"), "--input", str(data)]) == 2
    assert "no such folder" in _one_line_error(capsys)
    assert main(["infer", "--model", str(model / "export")]) == 2
    assert "--input" in _one_line_error(capsys)
    assert main(["infer"]) == 2
    assert "-c CONFIG" in _one_line_error(capsys)


def test_summary_statistics_leave_out_nan_and_keep_inf(tmp_path):
    from niftykit.engine.evaluation import statistics, summarise_evaluation
    assert statistics([1.0, float("nan"), 3.0]) == {
        "n": 2, "mean": 2.0, "sd": pytest.approx(2 ** 0.5), "median": 2.0}
    assert statistics([1.0, float("inf")])["mean"] == float("inf")
    table = tmp_path / "evaluation.csv"
    table.write_text("subject_id,reference,predicted,correct\na,0,0,1\nb,1,0,0\n")
    overall = summarise_evaluation(table, {"all": {"accuracy": 0.5}}, "unit", 2)
    assert overall.stats == {"all": {"accuracy": {"n": 2, "value": 0.5}}}
    assert "mean accuracy 0.5000" in overall.table()
