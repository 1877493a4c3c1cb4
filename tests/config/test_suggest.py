from niftykit.config.suggest import closest, did_you_mean, edit_distance


def test_edit_distance_counts_insertions_substitutions_and_transpositions():
    assert edit_distance("max_itr", "max_iter") == 1
    assert edit_distance("trainig", "training") == 1
    assert edit_distance("ab", "ba") == 1
    assert edit_distance("", "abc") == 3
    assert edit_distance("t1", "gan") == 3


def test_closest_is_case_insensitive_and_bounded():
    assert closest("TRAINIG", ["system", "training"]) == "training"
    assert closest("zzzzzz", ["training", "system"]) is None
    assert closest("gan", ["t1"], max_distance=2) is None


def test_did_you_mean_quotes_the_suggestion():
    assert did_you_mean("lrr", ["lr", "max_iter"]) == "; did you mean 'lr'?"
    assert did_you_mean("TRAINIG", ["TRAINING"], quote="[]") == "; did you mean [TRAINING]?"
    assert did_you_mean("qqqqqq", ["lr"]) == ""
