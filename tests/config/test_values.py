import pytest

from niftykit.config.values import Bool, Choice, Float, Int, Invalid, Mapping, Name, Str


def test_int_accepts_text_and_integral_floats_and_checks_range():
    kind = Int(ge=1, also=(-1,))
    assert kind.coerce("12") == 12
    assert kind.coerce(3.0) == 3
    assert kind.coerce(-1) == -1
    with pytest.raises(Invalid, match=r"must be -1 or >= 1, got 0"):
        kind.coerce(0)
    with pytest.raises(Invalid, match=r"expected an integer, got 'abc'"):
        kind.coerce("abc")
    with pytest.raises(Invalid, match="expected an integer"):
        kind.coerce(True)
    with pytest.raises(Invalid, match="expected an integer"):
        kind.coerce(2.5)


def test_int_between_bounds():
    with pytest.raises(Invalid, match="must be between -1 and 3, got 4"):
        Int(ge=-1, le=3).coerce(4)


def test_float_bounds_and_optional():
    assert Float(gt=0).coerce("1e-3") == 0.001
    with pytest.raises(Invalid, match=r"must be > 0, got -1.0"):
        Float(gt=0).coerce(-1)
    with pytest.raises(Invalid, match=r"must be > 0 and <= 1, got 1.5"):
        Float(gt=0, le=1).coerce(1.5)
    assert Float(optional=True).coerce(None) is None
    with pytest.raises(Invalid, match="expected a number, got 'x'"):
        Float().coerce("x")


@pytest.mark.parametrize("text, value", [("True", True), ("false", False), ("yes", True),
                                         ("no", False), ("1", True), ("0", False), (1, True)])
def test_bool_spellings(text, value):
    assert Bool().coerce(text) is value


def test_bool_rejects_other_text():
    with pytest.raises(Invalid, match="expected true or false, got 'maybe'"):
        Bool().coerce("maybe")


def test_str_accepts_numbers_and_optional_empty():
    assert Str().coerce(0) == "0"
    assert Str().coerce("") == ""
    assert Str(optional=True).coerce("") is None
    with pytest.raises(Invalid, match="expected text"):
        Str().coerce([1])


def test_choice_is_case_insensitive_and_suggests():
    kind = Choice(("uniform", "resize"))
    assert kind.coerce("UNIFORM") == "uniform"
    with pytest.raises(Invalid, match=r"got 'unifrom'; did you mean 'uniform'\?"):
        kind.coerce("unifrom")
    assert Choice(("a",), optional=True).coerce("") is None


def test_name_accepts_dotted_paths():
    kind = Name(("adam", "rmsprop"))
    assert kind.coerce("Adam") == "adam"
    assert kind.coerce("my_pkg.optim:Lion") == "my_pkg.optim:Lion"
    with pytest.raises(Invalid, match="or a dotted path"):
        kind.coerce("lion")


def test_mapping_from_yaml_text_and_dict():
    assert Mapping().coerce("{a: 1, b: [1, 2]}") == {"a": 1, "b": [1, 2]}
    assert Mapping().coerce("") == {}
    source = {"n": [1]}
    copied = Mapping().coerce(source)
    copied["n"].append(2)
    assert source == {"n": [1]}
    with pytest.raises(Invalid, match="expected a mapping"):
        Mapping().coerce("[1, 2]")
