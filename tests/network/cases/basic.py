CASES = {
    "toynet": dict(params=dict(n_features=4), window=(12, 10, 8), invalid=None,
                   channels=2, num_classes=3),
    "unet": dict(params=dict(n_features=[4, 8, 16]), window=(16, 16, 8), invalid=(18, 16, 16),
                 channels=1, num_classes=3),
}
