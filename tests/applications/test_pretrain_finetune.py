"""Unsupervised pre-training then fine-tuning, end to end through the CLI
(configs/method_pretrain_autoencoder.yaml, configs/method_finetune_classifier.yaml): the
VAE's encoder restored into applications.encoder_classifier, its first level frozen."""

import numpy as np
import pytest
import tensorflow as tf

from niftykit.data import make_nodules

LR = 0.001


def weights(prefix):
    """``{layer.weight: array}`` of a niftykit checkpoint (``network/`` weights only)."""
    reader = tf.train.load_checkpoint(str(prefix))
    found = {}
    for name, _ in tf.train.list_variables(str(prefix)):
        if name.startswith("weights/network.."):
            key = name.split("/")[1].replace("network..", "").replace("..", ".")
            found[key] = reader.get_tensor(name)
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cli):
    """5 autoencoder iterations on 12 unlabelled images, then 3 fine-tuning iterations
    (checkpoints after each) on the 3 labelled ones of the split."""
    root = tmp_path_factory.mktemp("pretrain")
    data, pre, fine = root / "data", root / "pre", root / "fine"
    make_nodules(data, n=12, size=16, seed=1)
    status, log = cli.run(["train", "-c", cli.CONFIGS / "method_pretrain_autoencoder.yaml",
                           "--set", f"inputs.image.path_to_search={data}",
                           "--set", f"system.model_dir={pre}", "--max_iter", "5"])
    assert status == 0, log
    status, log = cli.run(["train", "-c", cli.CONFIGS / "method_finetune_classifier.yaml",
                           "--set", f"inputs.image.path_to_search={data}",
                           "--set", f"inputs.label.csv_data_file={data / 'labels.csv'}",
                           "--set", f"training.restore_from={pre}",
                           "--set", f"system.model_dir={fine}", "--set", f"training.lr={LR}",
                           "--set", "training.save_every_n=1", "--max_iter", "3"])
    assert status == 0, log
    assert "initialised 4 of 6 variables" in log and "2 of 6 trainable variables frozen" in log
    return (weights(pre / "models" / "model.ckpt-5"),
            *(weights(fine / "models" / f"model.ckpt-{i}") for i in (1, 3)))


def test_the_encoder_starts_from_the_autoencoder(runs):
    pretrained, first, _ = runs
    assert {"encoder0_conv.kernel", "encoder1_conv.kernel", "posterior.kernel"} <= set(pretrained)
    assert set(first) == {f"{layer}.{w}" for layer in ("encoder0_conv", "encoder1_conv",
                                                       "head_logits") for w in ("kernel", "bias")}
    # one Adam step moves a weight by at most lr: the restored level 1 started at the VAE's
    step = np.abs(first["encoder1_conv.kernel"] - pretrained["encoder1_conv.kernel"])
    assert step.max() <= LR * 1.001 and step.max() > 0


def test_frozen_layers_stay_and_the_others_train(runs):
    pretrained, first, last = runs
    for name in ("encoder0_conv.kernel", "encoder0_conv.bias"):
        np.testing.assert_array_equal(last[name], pretrained[name])
    for name in ("encoder1_conv.kernel", "head_logits.kernel"):
        assert not np.allclose(last[name], first[name]), name
    assert not np.allclose(last["encoder1_conv.kernel"], pretrained["encoder1_conv.kernel"])
