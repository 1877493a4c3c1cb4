"""`niftykit report`: the HTML page, its PNGs and its table, from a tiny run and from
abdominal phantoms scored against eroded copies of their labels."""

import re
import subprocess
import sys
from html.parser import HTMLParser

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from niftykit.cli import main
from niftykit.data import make_shapes
from niftykit.data.abdomen import make_abdominal_phantoms
from niftykit.evaluation import evaluate_segmentations
from niftykit.io import write_csv
from niftykit.report.events import loss_curves
from niftykit.report.names import (
    ABDOMINAL_ORGANS,
    GIBSON_2018_DICE,
    is_abdominal,
    label_names,
)

TINY = ("--set", "network.name=toynet", "--set", "network.params={n_features: 4}",
        "--set", "network.batch_size=2", "--set", "network.queue_length=4",
        "--set", "training.sample_per_volume=2", "--set", "inference.overlap=0",
        "--max_iter", "4", "--validation_every_n", "2", "--tensorboard_every_n", "1")
PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """The image sources, table header cells and table rows (cells) of a page."""

    def __init__(self):
        super().__init__()
        self.images, self.header, self.rows, self._cell = [], [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = tag

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell == "th":
            self.header.append(data)
        elif self._cell == "td":
            self.rows[-1].append(data)


def _page(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.rows = [row for row in page.rows if row]
    return page


def _check_images(page, folder):
    assert page.images
    for src in page.images:
        assert "/" not in src and src.endswith(".png")
        data = (folder / src).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000, src


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, config_args):
    root = tmp_path_factory.mktemp("report")
    data, model = root / "data", root / "model"
    make_shapes(data, n_subjects=5, shape=(16, 16, 16), seed=6)
    args = config_args(data, model, *TINY)
    for command in ("train", "infer", "evaluate"):
        assert main([command, *args]) == 0
    return model, args


def test_report_of_a_run(tiny_run):
    model, args = tiny_run
    assert main(["report", *args]) == 0
    folder = model / "report"
    page = _page(folder / "index.html")
    _check_images(page, folder)
    assert {"loss.png", "dice_boxplot.png", "hausdorff95_boxplot.png"} <= set(page.images)
    assert any(src.startswith("case_") for src in page.images)
    assert [row[0] for row in page.rows] == ["1", "2"]  # labels: codes, no names
    assert "name" not in page.header and not any("Gibson" in h for h in page.header)
    assert page.header[:4] == ["label", "n", "dice mean ± sd", "dice median"]
    curves = loss_curves(model)
    assert [step for step, _ in curves["training"]] == [1, 2, 3, 4]
    assert [step for step, _ in curves["validation"]] == [2, 4]


def test_loss_curves_match_tensorboard(tiny_run):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util
    model, _ = tiny_run
    for run, curve in loss_curves(model).items():
        (path,) = (model / "logs" / run).glob("events.out.tfevents.*")
        acc = event_accumulator.EventAccumulator(str(path), {event_accumulator.TENSORS: 0})
        acc.Reload()
        expected = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                    for e in acc.Tensors("loss")]
        assert curve == expected


@pytest.fixture(scope="module")
def abdominal(tmp_path_factory):
    """Three phantoms; predictions: their labels eroded by one voxel; evaluated."""
    root = tmp_path_factory.mktemp("abdominal")
    data, model = root / "data", root / "model"
    manifest = make_abdominal_phantoms(data, 3, seed=2, shape=(32, 32, 16))
    rows = []
    for case in manifest["cases"]:
        label = nib.load(str(data / case["label"]))
        codes = np.asarray(label.dataobj)
        eroded = np.where(ndimage.binary_erosion(codes > 0), codes, 0).astype(np.uint8)
        path = model / "segmentation" / f"{case['id']}_niftynet_out.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(eroded, label.affine), str(path))
        rows.append((case["id"], str(path)))
    write_csv(model / "segmentation" / "inferred.csv", rows)
    evaluate_segmentations([(s, p, data / f"{s}_Label.nii.gz") for s, p in rows],
                           sorted(ABDOMINAL_ORGANS), model / "evaluation" / "evaluation.csv",
                           metrics=("dice", "hausdorff95"), units="label")
    config = root / "abdominal.yaml"
    config.write_text(
        "application: segmentation\n"
        "inputs:\n"
        "  ct: {path_to_search: data, filename_contains: [_CT], spatial_window_size: [16, 16, 16]}\n"
        "  label: {path_to_search: data, filename_contains: [_Label], interp_order: 0,\n"
        "          spatial_window_size: [16, 16, 16]}\n"
        "system: {model_dir: model}\n"
        "network: {name: toynet}\n"
        "inference: {save_seg_dir: segmentation}\n"
        "evaluation: {evaluations: [dice, hausdorff95], save_csv_dir: evaluation}\n"
        "segmentation: {image: [ct], label: label, num_classes: 9, label_normalisation: true,\n"
        "               evaluation_units: label}\n")
    return root, config


def test_abdominal_codes_show_organ_names_and_the_paper_column(abdominal):
    root, config = abdominal
    assert main(["report", "-c", str(config), "--cases", "2"]) == 0
    folder = root / "model" / "report"
    page = _page(folder / "index.html")
    _check_images(page, folder)
    assert len([src for src in page.images if src.startswith("case_")]) == 2
    assert page.header[:3] == ["label", "name", "n"]
    assert page.header[-1] == "dice, Gibson et al. 2018"
    assert [row[0] for row in page.rows] == [str(c) for c in sorted(ABDOMINAL_ORGANS)]
    for row in page.rows:
        code = int(row[0])
        assert row[1] == ABDOMINAL_ORGANS[code] and row[2] == "3"
        assert float(row[-1]) == GIBSON_2018_DICE[code]
    text = (folder / "index.html").read_text(encoding="utf-8")
    assert "radiological convention" in text.lower()


def test_names_option_and_name_rules(abdominal, tmp_path):
    root, config = abdominal
    out = tmp_path / "codes"
    assert main(["report", "-c", str(config), "--names", "codes", "--out", str(out),
                 "--cases", "0"]) == 0
    page = _page(out / "index.html")
    assert "name" not in page.header and page.header[-1] == "dice, Gibson et al. 2018"
    assert not any(src.startswith("case_") for src in page.images)
    assert label_names([1, 2]) == {} and not is_abdominal([1])
    assert label_names([1, 2], mode="abdominal") == {1: "spleen"}
    assert is_abdominal([1, 3, 6, 11])


def test_report_without_evaluation_is_a_one_line_error(tmp_path, capsys, config_args):
    assert main(["report", *config_args(tmp_path / "d", tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"evaluation\.csv not found; run `niftykit infer` and `niftykit evaluate`",
                     err) and err.count("\n") == 1


def test_report_package_imports_no_matplotlib():
    code = ("import sys, niftykit.cli, niftykit.report; niftykit.cli._parser(); "
            "sys.exit(any(m in sys.modules for m in ('matplotlib', 'tensorflow')))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
