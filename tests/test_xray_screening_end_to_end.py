"""2-D screening end to end (configs/method_xray_screening.yaml): generated 16-bit PNG films with
few abnormal ones, class-weighted cross-entropy, ROC AUC with its DeLong interval and
sensitivity/specificity at an operating point; plus the loss's class weights by hand."""

import csv
from pathlib import Path

import numpy as np
import pytest

from niftykit.cli import main
from niftykit.data.radiographs import make_radiographs

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "method_xray_screening.yaml"


def args(data, model, *extra):
    return ["-c", str(CONFIG), "--set", f"inputs.image.path_to_search={data}",
            "--set", f"inputs.label.csv_data_file={data / 'labels.csv'}",
            "--set", f"system.model_dir={model}", "--set", "inputs.image.spatial_window_size=[32,32]",
            "--max_iter", "30", *extra]


def read_rows(path):
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_class_weights_by_hand():
    from niftykit.loss.classification import balanced_class_weights, cross_entropy

    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    labels = np.array([0, 1, 1])
    e = -np.log(np.exp(logits[np.arange(3), labels]) / np.exp(logits).sum(axis=1))
    assert float(cross_entropy(logits, labels)) == pytest.approx(e.mean(), rel=1e-5)
    # mean_b w[y_b] e_b with w = (1, 5)
    weighted = float(cross_entropy(logits, labels, class_weights=(1.0, 5.0)))
    assert weighted == pytest.approx((e[0] + 5 * e[1] + 5 * e[2]) / 3, rel=1e-5)
    # with sample weights as well: sum_b s_b w[y_b] e_b / sum_b s_b
    both = float(cross_entropy(logits, labels, np.array([1.0, 0.0, 2.0]), class_weights=(1.0, 5.0)))
    assert both == pytest.approx((e[0] + 10 * e[2]) / 3, rel=1e-5)
    # 8 normal, 2 abnormal -> n / (K n_c) = 10 / 16, 10 / 4
    assert balanced_class_weights([8, 2]) == pytest.approx((0.625, 2.5))
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have none"):
        balanced_class_weights([10, 0])


def test_generator_is_imbalanced_16_bit_and_seeded(tmp_path):
    import imageio.v3 as iio

    rows = make_radiographs(tmp_path / "a", n=20, size=32, prevalence=0.25, seed=3)
    assert sum(label for _, label in rows) == 5
    film = iio.imread(tmp_path / "a" / "cxr000_image.png")
    assert film.dtype == np.uint16 and film.shape == (32, 32) and film.max() > 30000
    assert make_radiographs(tmp_path / "b", n=20, size=32, prevalence=0.25, seed=3) == rows
    assert (tmp_path / "a" / "cxr007_image.png").read_bytes() == (tmp_path / "b" / "cxr007_image.png").read_bytes()


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    root = tmp_path_factory.mktemp("xray")
    data, model = root / "data", root / "model"
    make_radiographs(data, n=40, size=32, prevalence=0.25, seed=0)
    for command in ("train", "infer"):
        assert main([command, *args(data, model)]) == 0, command
    return data, model


def test_train_keeps_auto_class_weights_in_its_config(screened):
    data, model = screened
    split = dict(csv.reader((model / "dataset_split.csv").open()))
    labels = dict(csv.reader((data / "labels.csv").open()))
    training = [labels[s] for s, phase in split.items() if phase == "training"]
    assert (model / "config.yaml").read_text().count("class_weights: auto") == 1
    assert training.count("1") >= 1  # the weights below come from these counts


def test_evaluate_prints_auc_interval_sensitivity_and_specificity(screened, capsys):
    data, model = screened
    capsys.readouterr()
    assert main(["evaluate", *args(data, model)]) == 0
    out = capsys.readouterr().out
    assert "ROC AUC" in out and "[95% CI" in out and "(DeLong;" in out
    assert "at operating point 0.5 (prob_1 >= 0.5): sensitivity" in out and "specificity" in out
    assert "mean sensitivity" in out and "mean roc_auc_ci_low" in out
    clinical = {row["metric"]: row for row in read_rows(model / "evaluation" / "clinical_metrics.csv")}
    assert list(clinical) == ["roc_auc", "sensitivity", "specificity", "threshold"]
    auc = clinical["roc_auc"]
    assert 0 <= float(auc["ci_low"]) <= float(auc["value"]) <= float(auc["ci_high"]) <= 1
    table = read_rows(model / "evaluation" / "evaluation.csv")
    assert list(table[0])[-1] == "at_operating_point"
    positives = [r for r in table if r["reference"] == "1"]
    called = sum(int(r["at_operating_point"]) for r in positives)
    assert float(clinical["sensitivity"]["value"]) == pytest.approx(called / len(positives))
    assert all(int(r["at_operating_point"]) == int(float(r["prob_1"]) >= 0.5) for r in table)
    # an operating point on the ROC, and the bootstrap interval
    assert main(["evaluate", *args(data, model, "--overwrite", "--set",
                                   "evaluation.operating_point=sensitivity@1.0", "--set",
                                   "evaluation.roc_ci=bootstrap")]) == 0
    out = capsys.readouterr().out
    assert "stratified bootstrap" in out and "at operating point sensitivity@1" in out
    clinical = {row["metric"]: row for row in read_rows(model / "evaluation" / "clinical_metrics.csv")}
    assert float(clinical["sensitivity"]["value"]) == 1.0


def test_pixel_spacing_and_grey_reach_the_preprocessing(screened, tmp_path):
    import imageio.v3 as iio

    from niftykit.application.classification import ClassificationApplication
    from niftykit.config import load_config

    data, _ = screened
    colour = tmp_path / "colour"
    colour.mkdir()
    for subject in ("cxr000", "cxr001"):
        grey = iio.imread(data / f"{subject}_image.png") // 256
        iio.imwrite(colour / f"{subject}_image.png", np.stack([grey] * 3, axis=-1).astype(np.uint8))
    config = load_config(CONFIG, [f"inputs.image.path_to_search={colour}",
                                  f"inputs.label.csv_data_file={data / 'labels.csv'}",
                                  "inputs.image.pixel_spacing=[0.2, 0.3]",
                                  f"system.model_dir={tmp_path / 'model'}"])
    app = ClassificationApplication(config)
    subject = next(s for s in app.subjects("evaluation") if s.id == "cxr000")
    (image,) = app.preprocessor.read_images(subject)
    assert image.array.shape == (32, 32, 1, 1)
    np.testing.assert_allclose(image.spacing[:2], [0.2, 0.3])


@pytest.mark.parametrize("setting, expected", [
    ("training.class_weights=[1, 2, 3]", "class_weights: 3 weights for num_classes=2"),
    ("training.class_weights=[0, 1]", "give one positive weight per class"),
    ("evaluation.operating_point=youden", "give a threshold in [0, 1]"),
])
def test_bad_screening_settings_are_one_line_errors(tmp_path, capsys, setting, expected):
    data = tmp_path / "data"
    make_radiographs(data, n=6, size=16, prevalence=0.5)
    assert main(["train", *args(data, tmp_path / "model", "--set", setting)]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
