"""Tiny cases for the classifiers (``resnet``, ``se_resnet``) and the regression head."""

CASES = {
    "resnet": dict(params=dict(n_features=[4, 8, 16], n_blocks_per_resolution=1),
                   window=(8, 8, 8), invalid=(9, 8, 8), channels=1, num_classes=3),
    "se_resnet": dict(params=dict(n_features=[4, 8, 16], n_blocks_per_resolution=1,
                                  reduction_ratio=4, block="basic"),
                      window=(8, 8, 1), invalid=(8, 2, 1), channels=2, num_classes=3,
                      spatial_rank=2),
    "regression_head": dict(params=dict(encoder="unet", encoder_params=dict(n_features=[4, 8]),
                                        features=4, hidden=[8]),
                            window=(8, 8, 8), invalid=(9, 8, 8), channels=1, num_classes=3),
}
