"""Worked example (c), applications/autoencoder.py (NiftyNet's net_autoencoder), end to end
through the CLI on 16^3 shapes: train, then infer as encode, encode-decode and sample."""

import csv

import nibabel as nib
import numpy as np
import pytest

from applications.vae import VAE, unpack, variational_lower_bound
from niftykit.config import check_supported, load_config
from niftykit.data import make_shapes
from niftykit.errors import NotSupportedError

CONFIG = "example_autoencoder.yaml"
KINDS = ("encode", "encode-decode", "sample")


def args(cli, data, model, *extra):
    return ["-c", cli.CONFIGS / CONFIG, "--set", f"inputs.image.path_to_search={data}",
            "--set", f"system.model_dir={model}", *extra]


def infer(cli, data, model, kind, *extra):
    return cli.run(["infer", *args(cli, data, model, "--set", f"autoencoder.inference_type={kind}",
                                   "--set", f"inference.save_seg_dir={kind}", *extra)])


@pytest.fixture(scope="module")
def run(tmp_path_factory, cli):
    """60 iterations on 6 subjects (2 held out), then the three kinds of inference."""
    root = tmp_path_factory.mktemp("autoencoder")
    data, model = root / "data", root / "model"
    make_shapes(data, n_subjects=8, shape=(16, 16, 16), seed=3)
    status, log = cli.run(["train", *args(cli, data, model, "--max_iter", "60",
                                          "--set", "training.log_every_n=10")])
    assert status == 0, log
    for kind in KINDS:
        assert infer(cli, data, model, kind)[0] == 0, kind
    return data, model, cli.losses(log)


def inferred(model, kind):
    return list(csv.reader((model / kind / "inferred.csv").open()))


def test_the_lower_bound_rises(run):
    _, _, losses = run  # the loss is its negative
    assert len(losses) >= 6 and losses[-1] < losses[0] - 500, losses


def test_encode_writes_the_posterior_of_each_subject(run):
    _, model, _ = run
    assert len(inferred(model, "encode")) == 2
    for subject, path in inferred(model, "encode"):
        with open(path, newline="") as handle:
            (row,) = list(csv.DictReader(handle))
        assert list(row) == (["subject_id"] + [f"mean_{i}" for i in range(16)]
                             + [f"logvar_{i}" for i in range(16)])
        assert row["subject_id"] == subject
        assert all(np.isfinite(float(v)) for k, v in row.items() if k != "subject_id")


@pytest.mark.parametrize("kind", ["encode-decode", "sample"])
def test_images_lie_on_the_input_grid(run, kind):
    data, model, _ = run
    written = inferred(model, kind)
    assert len(written) == 2
    for subject, path in written:
        assert path.endswith(f"{subject}.nii.gz" if kind == "encode-decode"
                             else f"{subject}_sample.nii.gz")
        out, source = nib.load(path), nib.load(data / f"{subject}_image.nii.gz")
        assert out.shape == source.shape and out.get_data_dtype() == np.float32
        np.testing.assert_allclose(out.affine, source.affine, atol=1e-6)
        assert np.all(np.isfinite(np.asarray(out.dataobj)))


def test_samples_are_seeded_per_subject(run, cli):
    data, model, _ = run
    (_, a), (_, b) = inferred(model, "sample")
    before = [np.asarray(nib.load(p).dataobj) for p in (a, b)]
    assert not np.allclose(before[0], before[1])
    assert infer(cli, data, model, "sample", "--overwrite")[0] == 0
    for path, old in zip((a, b), before):
        np.testing.assert_array_equal(np.asarray(nib.load(path).dataobj), old)


def test_evaluate_says_there_is_nothing_to_compare(run, cli, capsys):
    data, model, _ = run
    capsys.readouterr()
    status, _ = cli.run(["evaluate", *args(cli, data, model,
                                           "--set", "inference.save_seg_dir=encode-decode")])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no references" in err[0], err


def test_vae_shapes_config_and_the_bound():
    model = VAE(num_classes=1, window=(8, 8, 8), n_features=[4, 8], latent_size=3, name="network")
    images = np.random.default_rng(0).normal(size=(2, 8, 8, 8, 1)).astype(np.float32)
    outputs = model(images, training=False)
    assert outputs.shape == (2, 2 * 8 ** 3 + 2 * 3)
    clone = VAE.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    parts = unpack(outputs, images.shape)
    assert parts["data_means"].shape == images.shape and parts["posterior_means"].shape == (2, 3)
    # with every mean and log-variance 0 the bound is the standard normal's: x^2/2 + log(2 pi)/2
    zeros = {k: np.zeros(v.shape, np.float32) for k, v in parts.items()}
    expected = np.mean(np.sum(0.5 * images ** 2 + 0.5 * np.log(2 * np.pi), axis=(1, 2, 3, 4)))
    assert float(variational_lower_bound(zeros, images)) == pytest.approx(expected, rel=1e-5)
    # the code-taking twin (sample inference) has the same weights, by name
    twin = VAE(num_classes=1, window=(8, 8, 8), n_features=[4, 8], latent_size=3,
               decode_codes=True, name="network")
    twin(np.zeros((1, 1, 1, 1, 3), np.float32))
    assert sorted(v.path for v in twin.variables) == sorted(v.path for v in model.variables)


def test_a_user_application_owns_its_section_markers(cli, tmp_path):
    """niftykit/config/support.py: [autoencoder] keys are the user application's to support;
    a user application on [segmentation] still gets niftykit's markers checked."""
    check_supported(load_config(cli.CONFIGS / CONFIG))
    config = load_config(cli.CONFIGS / "example_boundary_seg.yaml", ["segmentation.do_mixup=true"])
    with pytest.raises(NotSupportedError, match=r"\[segmentation\] do_mixup"):
        check_supported(config)
    text = (cli.CONFIGS / CONFIG).read_text().replace(
        "application: applications.autoencoder:AutoencoderApplication", "application: autoencoder")
    (tmp_path / "builtin.yaml").write_text(text)
    config = load_config(tmp_path / "builtin.yaml")
    with pytest.raises(NotSupportedError, match="application: 'autoencoder' is not supported"):
        check_supported(config)
