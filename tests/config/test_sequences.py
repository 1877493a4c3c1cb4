import pytest

from niftykit.config.sequences import (Axcodes, FloatPair, IntList, SpatialSize, StrList,
                                       Triple, split_items)
from niftykit.config.values import Invalid


@pytest.mark.parametrize("value, items", [
    ("(a, b)", ["a", "b"]), ("a,b", ["a", "b"]), ("a", ["a"]), ("", []), ("()", []),
    ("('x', \"y\")", ["x", "y"]), ([1, 2], [1, 2]), (5, [5]), (None, []), ("a,", ["a"]),
])
def test_split_items(value, items):
    assert split_items(value) == items


def test_str_list():
    assert StrList().coerce("T1, T2") == ("T1", "T2")
    assert StrList().coerce(["CT"]) == ("CT",)
    assert StrList().coerce("()") == ()
    with pytest.raises(Invalid):
        StrList().coerce([["nested"]])


def test_spatial_size_two_values_is_a_2d_window():
    assert SpatialSize().coerce("(20, 42, 42)") == (20, 42, 42)
    assert SpatialSize().coerce([64, 64]) == (64, 64, 1)
    assert SpatialSize().coerce("") is None


def test_spatial_size_rejects_one_value_with_niftynet_note():
    with pytest.raises(Invalid, match=r"give 2 or 3 values.*\(N, 1, 1\)"):
        SpatialSize().coerce("105")
    with pytest.raises(Invalid, match="give 2 or 3 values"):
        SpatialSize().coerce([1, 2, 3, 4])
    with pytest.raises(Invalid, match=">= 0"):
        SpatialSize().coerce([-1, 2, 3])


def test_triple_repeats_one_value():
    assert Triple(int, ge=0).coerce("21") == (21, 21, 21)
    assert Triple(float, True, gt=0).coerce("(1.0, 0.5, 2)") == (1.0, 0.5, 2.0)
    assert Triple(float, True, gt=0).coerce(None) is None
    with pytest.raises(Invalid, match="1 value .* or 3 values"):
        Triple(int).coerce([1, 2])
    with pytest.raises(Invalid, match="must be >= 0"):
        Triple(int, ge=0).coerce(-2)


def test_float_pair_order_and_bounds():
    assert FloatPair().coerce("(-10.0, 10.0)") == (-10.0, 10.0)
    assert FloatPair().coerce("") is None
    with pytest.raises(Invalid, match="min must not exceed max"):
        FloatPair().coerce([2, 1])
    with pytest.raises(Invalid, match="expected 2 numbers"):
        FloatPair().coerce([1])
    with pytest.raises(Invalid, match="between 0 and 1"):
        FloatPair(False, ge=0, le=1).coerce([0.1, 2])


def test_axcodes():
    assert Axcodes().coerce("(A, R, S)") == ("A", "R", "S")
    assert Axcodes().coerce("ras") == ("R", "A", "S")
    assert Axcodes().coerce(["L", "P", "I"]) == ("L", "P", "I")
    assert Axcodes().coerce("") is None
    for bad in ("(R, L, S)", "RA", ["R", "A", "X"]):
        with pytest.raises(Invalid, match="one per axis from L/R, A/P, S/I"):
            Axcodes().coerce(bad)


def test_int_list_off_value():
    kind = IntList(off=-1, ge=0, le=2)
    assert kind.coerce(-1) == ()
    assert kind.coerce("0,1") == (0, 1)
    with pytest.raises(Invalid, match="between 0 and 2"):
        kind.coerce("3")
