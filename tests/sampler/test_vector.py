from __future__ import annotations

import csv

import numpy as np
import pytest

from niftykit.errors import DataError
from niftykit.sampler.vector import VectorAggregator


def read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_one_row_per_subject_in_the_order_added(tmp_path):
    aggregator = VectorAggregator(tmp_path / "out" / "scores.csv", ["background", "tumour"], overwrite=False)
    aggregator.add("case10", np.array([0.25, 0.75], np.float32))
    aggregator.add("case02", np.array([[0.5, 0.5], [0.0, 1.0], [1.0, 0.0]]))
    aggregator.add("case07", [3, 4])
    path = aggregator.close()
    assert path == tmp_path / "out" / "scores.csv" and len(aggregator) == 3
    rows = read(path)
    assert rows[0] == ["subject_id", "background", "tumour"]
    assert [r[0] for r in rows[1:]] == ["case10", "case02", "case07"]
    np.testing.assert_allclose([[float(v) for v in r[1:]] for r in rows[1:]], [[0.25, 0.75], [0.5, 0.5], [3, 4]])
    assert rows[1][1:] == ["0.25", "0.75"]


def test_a_subject_added_twice_is_refused(tmp_path):
    aggregator = VectorAggregator(tmp_path / "scores.csv", ["age"], overwrite=False)
    aggregator.add("case01", np.array([61.0]))
    with pytest.raises(ValueError, match="'case01' was already added"):
        aggregator.add("case01", np.array([62.0]))


@pytest.mark.parametrize("values", [np.zeros(3), np.zeros((2, 3)), np.zeros((0, 2)), np.zeros((1, 1, 2))])
def test_values_of_the_wrong_shape_are_refused(tmp_path, values):
    aggregator = VectorAggregator(tmp_path / "scores.csv", ["a", "b"], overwrite=False)
    with pytest.raises(ValueError, match=r"must be \(2,\) or \(n_windows, 2\)"):
        aggregator.add("case01", values)


def test_existing_file_needs_overwrite_and_writes_atomically(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("keep\n")
    aggregator = VectorAggregator(path, ["a"], overwrite=False)
    aggregator.add("case01", [1.0])
    with pytest.raises(DataError, match="exists"):
        aggregator.close()
    assert path.read_text() == "keep\n" and sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]
    replacing = VectorAggregator(path, ["a"], overwrite=True)
    replacing.add("case01", [1.0])
    replacing.close()
    assert read(path) == [["subject_id", "a"], ["case01", "1.0"]]


def test_closed_aggregator_takes_no_more(tmp_path):
    aggregator = VectorAggregator(tmp_path / "scores.csv", ["a"], overwrite=False)
    aggregator.close()
    assert read(tmp_path / "scores.csv") == [["subject_id", "a"]]
    with pytest.raises(RuntimeError, match="already written"):
        aggregator.add("case01", [1.0])
    with pytest.raises(RuntimeError, match="already written"):
        aggregator.close()


@pytest.mark.parametrize("names", [[], ["a", "a"], ["subject_id"]])
def test_bad_names_are_refused(tmp_path, names):
    with pytest.raises(ValueError, match="distinct column names"):
        VectorAggregator(tmp_path / "scores.csv", names, overwrite=False)
