import pytest

from niftykit.config.apps import (RegressionConfig, SegmentationConfig, is_dotted,
                                  normalise_application)
from niftykit.config.values import Invalid


@pytest.mark.parametrize("name, expected", [
    ("segmentation", "segmentation"), ("Segmentation", "segmentation"),
    ("net_segment", "segmentation"), ("net_regress", "regression"),
    ("net_classify", "classification"), ("net_autoencoder", "autoencoder"), ("net_gan", "gan"),
    ("my_pkg.apps:MyApp", "my_pkg.apps:MyApp"),
    ("niftynet.application.label_driven_registration.RegApp",
     "niftynet.application.label_driven_registration.RegApp"),
])
def test_normalise_application(name, expected):
    assert normalise_application(name) == expected


def test_unknown_application_suggests():
    with pytest.raises(Invalid, match="did you mean 'segmentation'"):
        normalise_application("segmentaton")


def test_is_dotted():
    assert is_dotted("pkg.mod:Cls") and is_dotted("pkg.mod.Cls")
    assert not is_dotted("segmentation") and not is_dotted("pkg.mod:")


def test_app_defaults():
    seg = SegmentationConfig()
    assert seg.num_classes == -1 and seg.softmax is True and seg.compulsory_labels == (0, 1)
    assert RegressionConfig().loss_border == 0
