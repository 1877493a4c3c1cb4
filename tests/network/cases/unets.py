CASES = {
    "unet_2d": dict(params=dict(n_features=[4, 8]), window=(20, 20, 1), invalid=(21, 20, 1),
                    channels=1, num_classes=2, spatial_rank=2),
    "nonewnet": dict(params=dict(n_features=[4, 8, 16]), window=(8, 8, 8), invalid=(10, 8, 8),
                     channels=2, num_classes=3),
    "vnet": dict(params=dict(n_features=[4, 8], n_convs=[1, 2]), window=(8, 8, 4),
                 invalid=(9, 8, 4), channels=1, num_classes=3),
}
