"""niftykit/engine/ensemble.py: the fusion maths, then ``infer --model A --model B`` end to end.

Segmentation: two tiny U-Nets on 16^3 ``make_shapes`` volumes, different seeds; model B
resamples to 1 mm isotropic (the data are 1 x 1.2 x 1.5 mm, rotated) and infers with 8^3
windows, so the two models see different grids and the fusion must happen on the input's.
Classification: two tiny ResNets on noise-or-ball volumes (as tests/application).
"""

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from niftykit.cli import main
from niftykit.data import make_shapes
from niftykit.data.shapes import shapes_affine
from niftykit.engine.ensemble import Fusion, fuse, normalise_weights
from niftykit.errors import ConfigError
from niftykit.io import write_image

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


# -- the maths ----------------------------------------------------------------------------
def test_mean_and_weighted_mean():
    a = np.array([[0.9, 0.1], [0.2, 0.8]])
    b = np.array([[0.5, 0.5], [0.6, 0.4]])
    np.testing.assert_allclose(fuse([a, b]), (a + b) / 2, rtol=1e-6)
    np.testing.assert_allclose(fuse([a, b], [3, 1]), 0.75 * a + 0.25 * b, rtol=1e-6)
    np.testing.assert_allclose(fuse([a, b], [1, 0]), a, rtol=1e-6)


def test_vote_counts_weighted_labels_and_ties_go_to_the_lowest_class():
    a = np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.1, 0.8, 0.1]])  # labels 0, 2, 1
    b = np.array([[0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.0, 0.1, 0.9]])  # labels 1, 2, 2
    c = np.array([[0.1, 0.8, 0.1], [0.9, 0.0, 0.1], [0.0, 0.2, 0.8]])  # labels 1, 0, 2
    np.testing.assert_allclose(fuse([a, b, c], fusion="vote"),
                               [[1 / 3, 2 / 3, 0], [1 / 3, 0, 2 / 3], [0, 1 / 3, 2 / 3]], rtol=1e-6)
    fused = Fusion("vote")
    fused.add(a, 0.5)
    fused.add(b, 0.5)
    np.testing.assert_array_equal(fused.labels(), [0, 2, 1])  # ties: 0 vs 1 -> 0; 1 vs 2 -> 1
    weighted = fuse([a, b, c], [0.5, 0.3, 0.2], fusion="vote")
    np.testing.assert_array_equal(np.argmax(weighted, -1), [0, 2, 1])  # a outweighs b + c


def test_weights_are_checked_and_normalised():
    np.testing.assert_allclose(normalise_weights([0.7, 0.7], 2), [0.5, 0.5])
    np.testing.assert_allclose(normalise_weights(None, 4), [0.25] * 4)
    for bad in ([1.0], [1.0, -1.0], [0.0, 0.0], [np.nan, 1.0]):
        with pytest.raises(ConfigError, match="--weights"):
            normalise_weights(bad, 2)
    with pytest.raises(ConfigError, match="--fusion"):
        Fusion("median")


# -- segmentation end to end --------------------------------------------------------------
PROB = ("--set", "segmentation.output_prob=true")
NAME = "case00_niftynet_out.nii.gz"


def _array(path):
    return np.asarray(nib.load(str(path)).dataobj)


@pytest.fixture(scope="module")
def seg(tmp_path_factory, config_args):
    """Model A (iteration 10 of a tiny run) and model B (its iteration 5, resampled to 1 mm
    with 8^3 windows: a snapshot ensemble on two grids), exported, B also as a training
    config file; and each one's probabilities for case00 inferred alone."""
    root = tmp_path_factory.mktemp("ensemble_seg")
    data, run = root / "data", root / "run"
    make_shapes(data, n_subjects=3, shape=(16, 16, 16), seed=2)
    small = ("--set", "network.params={n_features: [4, 8], norm: instance}")
    as_b = ("--set", "inputs.image.pixdim=[1,1,1]", "--set", "inputs.label.pixdim=[1,1,1]",
            "--set", "inference.spatial_window_size=[8,8,8]")
    assert main(["train", *config_args(data, run, *small, "--max_iter", "10", "--save_every_n",
                                       "5", "--validation_every_n", "-1",
                                       "--set", "training.exclude_fraction_for_validation=0",
                                       "--set", "training.exclude_fraction_for_inference=0")]) == 0
    a, b = root / "a", root / "b"
    assert main(["export", *config_args(data, run, *small, "--out", str(a))]) == 0
    assert main(["export", *config_args(data, run, *small, *as_b, "--iter", "5",
                                        "--out", str(b))]) == 0
    config = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())
    for name in ("image", "label"):
        config["inputs"][name].update(path_to_search=str(data), pixdim=[1.0, 1.0, 1.0])
    config["system"]["model_dir"] = str(run)
    config["network"]["params"] = {"n_features": [4, 8], "norm": "instance"}
    config["inference"].update(spatial_window_size=[8, 8, 8], inference_iter=5)
    b_config = root / "b.yaml"
    b_config.write_text(yaml.safe_dump(config))
    image = data / "case00_image.nii.gz"
    for out, model in (("pa", a), ("pb", b)):
        assert main(["infer", "--model", str(model), "--input", str(image),
                     "--out", str(root / out), *PROB]) == 0
    pa, pb = _array(root / "pa" / NAME), _array(root / "pb" / NAME)
    assert not np.allclose(pa, pb, atol=1e-3)  # two different models
    return root, image, a, b, b_config, pa, pb


def test_segmentation_mean_of_probabilities_on_the_input_grid(seg):
    root, image, a, b, _, pa, pb = seg
    members = ["--model", str(a), "--model", str(b), "--input", str(image)]
    assert main(["infer", *members, "--out", str(root / "fused_p"), *PROB]) == 0
    assert main(["infer", *members, "--out", str(root / "fused")]) == 0
    fused_p, labels = _array(root / "fused_p" / NAME), _array(root / "fused" / NAME)
    source = nib.load(str(image))
    assert pa.shape == pb.shape == fused_p.shape == source.shape + (3,)
    np.testing.assert_allclose(fused_p, (pa + pb) / 2, atol=1e-5)
    assert labels.shape == source.shape and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.argmax(fused_p, axis=-1))
    for out in ("fused", "fused_p"):
        np.testing.assert_allclose(nib.load(str(root / out / NAME)).affine, source.affine,
                                   atol=1e-6)
    assert list(csv.reader((root / "fused" / "inferred.csv").open())) == \
        [["case00", str(root / "fused" / NAME)]]
    assert not [p for p in (root / "fused").iterdir() if p.name.startswith(".")]  # temp removed
    assert main(["infer", *members, "--out", str(root / "fused")]) == 2  # no silent overwrite


def test_a_lone_training_config_as_model_is_its_run(seg, capsys):
    root, image, _, _, b_config, _, pb = seg
    assert main(["infer", "--model", str(b_config), "--input", str(image),
                 "--out", str(root / "lone"), *PROB]) == 0
    np.testing.assert_allclose(_array(root / "lone" / NAME), pb, atol=1e-5)
    assert main(["infer", "-c", str(b_config), "--model", str(b_config), "--input", str(image),
                 "--out", str(root / "lone2")]) == 2
    assert "is a config file" in capsys.readouterr().err


def test_segmentation_weights_a_training_config_member_and_vote(seg):
    from niftykit import api
    root, image, a, b, b_config, pa, pb = seg
    assert main(["infer", "--model", str(a), "--model", str(b_config), "--weights", "3", "1",
                 "--input", str(image), "--out", str(root / "weighted"), *PROB]) == 0
    np.testing.assert_allclose(_array(root / "weighted" / NAME), 0.75 * pa + 0.25 * pb,
                               atol=1e-5)
    written = api.ensemble([a, b], images=[image], out=root / "vote", fusion="vote")
    assert written == [root / "vote" / NAME]
    la, lb = np.argmax(pa, -1), np.argmax(pb, -1)
    np.testing.assert_array_equal(_array(written[0]), np.minimum(la, lb))  # a tie: the lowest


# -- classification end to end ------------------------------------------------------------
def _classes(folder, n=8, seed=0, shape=(16, 16, 16)):
    """Noise (class 0) or noise with a bright ball (class 1); ``labels.csv``."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    rows = []
    for i in range(n):
        image = rng.normal(0.0, 0.3, shape).astype(np.float32)
        if i % 2:
            image[np.linalg.norm(grid - rng.uniform(4, 12, 3), axis=-1) <= 3] += 2.0
        write_image(image, shapes_affine(), folder / f"case{i:02d}_image.nii.gz")
        rows.append(f"case{i:02d},{i % 2}\n")
    (folder / "labels.csv").write_text("".join(rows))


@pytest.fixture(scope="module")
def cls(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble_cls")
    data = root / "data"
    _classes(data)

    def args(model, *extra):
        return ["-c", str(CONFIGS / "classification.yaml"),
                "--set", f"inputs.image.path_to_search={data}",
                "--set", f"inputs.label.csv_data_file={data / 'labels.csv'}",
                "--set", f"system.model_dir={root / model}", *extra]
    assert main(["train", *args("run", "--max_iter", "10", "--save_every_n", "5")]) == 0
    for iteration in ("10", "5"):  # a snapshot ensemble: the run's two checkpoints
        assert main(["export", *args("run", "--iter", iteration,
                                     "--out", str(root / f"iter{iteration}"))]) == 0
    # c: a copy relabelled as a 3-class model (the check reads the exported config)
    shutil.copytree(root / "iter10", root / "c")
    text = (root / "c" / "config.yaml").read_text()
    assert "num_classes: 2" in text
    (root / "c" / "config.yaml").write_text(text.replace("num_classes: 2", "num_classes: 3"))
    return root, data, args


def _rows(folder):
    return {row["subject_id"]: row for csv_path in folder.glob("*_class.csv")
            for row in csv.DictReader(csv_path.open())}


def test_classification_ensemble_fuses_class_probabilities(cls):
    root, data, args = cls
    a, b = str(root / "iter10"), str(root / "iter5")
    for out, model in (("single_a", a), ("single_b", b)):
        assert main(["infer", "--model", model, "--input", str(data),
                     "--out", str(root / out)]) == 0
    assert main(["infer", "--model", a, "--model", b, "--input", str(data),
                 "--out", str(root / "fused")]) == 0
    single_a, single_b, fused = (_rows(root / out) for out in ("single_a", "single_b", "fused"))
    assert len(fused) == 8 and set(fused) == set(single_a)
    for sid, row in fused.items():
        pa = np.array([float(single_a[sid][c]) for c in ("prob_0", "prob_1")])
        pb = np.array([float(single_b[sid][c]) for c in ("prob_0", "prob_1")])
        pf = np.array([float(row[c]) for c in ("prob_0", "prob_1")])
        np.testing.assert_allclose(pf, (pa + pb) / 2, atol=1e-5)
        assert int(row["label"]) == int(np.argmax(pf))
    # -c DATA instead of --input: the config's inference subjects, its save_seg_dir (--out here)
    assert main(["infer", "--model", a, "--model", b,
                 *args("run", "--out", str(root / "cfg"))]) == 0
    assert set(_rows(root / "cfg")) < set(fused)


def test_mismatched_models_exit_2_naming_the_folder(cls, capsys):
    root, data, _ = cls
    a, c = str(root / "iter10"), str(root / "c")
    assert main(["infer", "--model", a, "--model", c, "--input", str(data),
                 "--out", str(root / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"--model {c}: num_classes is 3" in err and a in err
    assert not list((root / "bad").glob("*.csv"))
    assert main(["infer", "--model", a, "--model", a, "--weights", "1", "--input", str(data),
                 "--out", str(root / "bad")]) == 2
    assert "one weight per --model (2)" in capsys.readouterr().err
    assert main(["infer", "--model", a, "--fusion", "vote", "--input", str(data)]) == 2
    assert "for ensembles" in capsys.readouterr().err
