"""`niftykit crossval`: K=2 folds on six 16^3 subjects with a tiny ToyNet, then resumed."""

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from niftykit.cli import main
from niftykit.config import load_config
from niftykit.data import make_shapes
from niftykit.engine.crossval import fold_overrides

TINY = ("--set", "network.name=toynet", "--set", "network.params={n_features: 4}",
        "--set", "network.batch_size=2", "--set", "network.queue_length=4",
        "--set", "training.sample_per_volume=2", "--set", "inference.overlap=0",
        "--max_iter", "4", "--save_every_n", "2", "--validation_every_n", "2",
        "--tensorboard_every_n", "2")
IDS = [f"case{i:02d}" for i in range(6)]
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def run(tmp_path_factory, config_args):
    root = tmp_path_factory.mktemp("crossval")
    data, model = root / "data", root / "model"
    make_shapes(data, n_subjects=6, shape=(16, 16, 16), seed=4)
    args = ["crossval", *config_args(data, model, *TINY), "--folds", "2"]
    assert main(args) == 0
    return model / "crossval", args


def _held_out(out, fold):
    rows = csv.reader((out / "folds" / f"fold_{fold}.csv").open())
    return {subject for subject, phase in rows if phase == "inference"}


def test_both_folds_trained_on_disjoint_held_out_sets(run):
    out, _ = run
    held = [_held_out(out, k) for k in (0, 1)]
    assert held[0].isdisjoint(held[1]) and held[0] | held[1] == set(IDS)
    for fold in (0, 1):
        folder = out / f"fold_{fold}"
        assert (folder / "models" / "model.ckpt-4.index").exists()
        assert any((folder / "logs" / "training").iterdir())
        inferred = {row[0] for row in csv.reader((folder / "segmentation" / "inferred.csv").open())}
        assert inferred == held[fold]
        rows = list(csv.DictReader((folder / "evaluation" / "evaluation.csv").open()))
        assert {row["subject_id"] for row in rows} == held[fold]
        # the fold trained on the other subjects only (one of them for validation)
        split = dict(csv.reader((out / "folds" / f"fold_{fold}.csv").open()))
        assert sorted(split.values()).count("validation") == 1
    manifest = json.loads((out / "crossval.json").read_text(encoding="utf-8"))
    assert manifest["folds"] == 2 and sorted(manifest["held_out"]["fold_1"]) == sorted(held[1])


def test_summary_is_numpy_over_the_per_subject_rows(run):
    out, _ = run
    rows = list(csv.DictReader((out / "crossval_evaluation.csv").open()))
    assert sorted({r["subject_id"] for r in rows}) == IDS
    assert len(rows) == 6 * 2  # six subjects, labels 1 and 2
    summary = list(csv.DictReader((out / "crossval_summary.csv").open()))
    assert list(summary[0]) == ["label", "name", "metric", "n", "mean", "sd", "median", "folds",
                                "fold_mean", "fold_sd"]
    assert {(s["label"], s["metric"]) for s in summary} == {
        (label, metric) for label in ("1", "2")
        for metric in ("dice", "hausdorff95", "average_distance")}
    for s in summary:
        mine = [r for r in rows if r["label"] == s["label"]]
        values = np.array([float(r[s["metric"]]) for r in mine])
        values = values[~np.isnan(values)]
        assert int(s["n"]) == values.size
        for column, expected in (("mean", np.mean(values)), ("median", np.median(values)),
                                 ("sd", np.std(values, ddof=1))):
            assert math.isclose(float(s[column]), expected, rel_tol=1e-9, abs_tol=1e-12) or \
                (math.isinf(expected) and float(s[column]) == expected), (s, column)
        fold_means = [np.mean([float(r[s["metric"]]) for r in mine if r["fold"] == str(k)])
                      for k in (0, 1)]
        assert math.isclose(float(s["fold_mean"]), np.mean(fold_means), rel_tol=1e-9)
        assert math.isclose(float(s["fold_sd"]), np.std(fold_means, ddof=1), rel_tol=1e-9,
                            abs_tol=1e-12)


def test_resume_skips_finished_folds_and_continues_training(run, capsys):
    out, args = run
    capsys.readouterr()
    fold1 = out / "fold_1"
    # fold 1 as if stopped at iteration 2: no evaluation, no "trained" marker, no ckpt-4
    (fold1 / "evaluation" / "evaluation.csv").unlink()
    (fold1 / "crossval_trained.json").unlink()
    for path in (fold1 / "models").glob("model.ckpt-4.*"):
        path.unlink()
    summary_before = (out / "crossval_summary.csv").stat().st_mtime_ns
    fold0_ckpt = (out / "fold_0" / "models" / "model.ckpt-4.index").stat().st_mtime_ns
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "fold 0 of 2: evaluated earlier" in text
    assert "fold 1: resuming training from the checkpoint of iteration 2" in text
    assert "resumed from the checkpoint of iteration 2" in text
    assert (fold1 / "models" / "model.ckpt-4.index").exists()
    assert (fold1 / "evaluation" / "evaluation.csv").exists()
    assert (out / "fold_0" / "models" / "model.ckpt-4.index").stat().st_mtime_ns == fold0_ckpt
    assert (out / "crossval_summary.csv").stat().st_mtime_ns > summary_before


def test_bad_fold_and_changed_folds_are_errors(run, capsys):
    out, args = run
    assert main([*args, "--fold", "2"]) == 2
    assert "--fold 2 is not among the folds 0..1" in capsys.readouterr().err
    folds_at = args.index("--folds")
    three = args[:folds_at] + ["--folds", "3"]
    assert main(three) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_fold_overrides_point_every_output_into_the_fold(tmp_path):
    base = load_config(CONFIGS / "quickstart.yaml", [f"system.model_dir={tmp_path / 'm'}"])
    found = fold_overrides(base, tmp_path / "cv" / "fold_0", tmp_path / "cv" / "folds" / "f.csv")
    fold = load_config(CONFIGS / "quickstart.yaml", found)
    assert fold.system.model_dir == tmp_path / "cv" / "fold_0"
    assert fold.inference.save_seg_dir == tmp_path / "cv" / "fold_0" / "segmentation"
    assert fold.evaluation.save_csv_dir == tmp_path / "cv" / "fold_0" / "evaluation"
    assert fold.network.histogram_ref_file.parent == tmp_path / "cv" / "fold_0"
    assert fold.inference.dataset_to_infer == "inference"


def test_report_of_the_crossval(run):
    out, args = run
    config = args[1:args.index("--folds")]
    assert main(["report", *config, "--crossval", str(out), "--cases", "1"]) == 0
    text = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "Cross-validation report: 2 of 2 folds" in text and "fold means" in text
    assert "network: toynet" in text
    for src in re.findall(r'<img src="([^"]+)"', text):
        assert (out / "report" / src).read_bytes().startswith(b"\x89PNG")
    assert re.findall(r'<tr data-unit="([^"]+)"', text) == ["1", "2"]
