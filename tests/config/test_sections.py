from pathlib import Path

from niftykit.config.sections import (EvaluationConfig, InferenceConfig, InputConfig,
                                      NetworkConfig, SystemConfig, TrainingConfig)


def test_niftynet_defaults():
    network, training = NetworkConfig(), TrainingConfig()
    assert (network.batch_size, network.queue_length, network.cutoff) == (2, 5, (0.01, 0.99))
    assert network.window_sampling == "uniform" and network.weight_initializer == "he_normal"
    assert (training.lr, training.max_iter, training.save_every_n) == (0.01, 10000, 500)
    assert training.validation_every_n == -1 and training.loss_type == "Dice"
    assert InferenceConfig().border == (0, 0, 0)
    assert InferenceConfig().output_postfix == "_niftynet_out"
    assert InputConfig().interp_order == 1
    assert SystemConfig().dataset_split_file == Path("dataset_split.csv")
    assert EvaluationConfig().save_csv_dir == Path("evaluation")


def test_niftykit_keys():
    system, network = SystemConfig(), NetworkConfig()
    assert (system.seed, system.strategy) == (0, "default")
    assert (network.params, network.precision) == ({}, "float32")
