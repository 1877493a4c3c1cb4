"""Tiny cases for HighRes3DNet (three variants) and DeepMedic."""

_HIGHRES = dict(first_features=4, n_features=[4, 6, 8], n_blocks=1)

CASES = {
    "highres3dnet": dict(params=dict(_HIGHRES, head_features=[8]), window=(12, 10, 7),
                         invalid=None, channels=1, num_classes=3),
    "highres3dnet_small": dict(params=dict(_HIGHRES, head_features=[8]), window=(12, 10, 8),
                               invalid=(11, 10, 8), channels=1, num_classes=3),
    "highres3dnet_large": dict(params=dict(_HIGHRES, head_features=[8, 8], dropout_rate=0.2),
                               window=(10, 9, 8), invalid=None, channels=2, num_classes=3),
    # 4 convolutions per pathway (8 voxels lost), d_factor 3: output = window - 24
    "deepmedic": dict(params=dict(conv_features=[4, 4, 6, 6], fc_features=[8], dropout_rate=0.2,
                                  residual_layers=[4]),
                      window=(27, 33, 30), invalid=(28, 27, 27), channels=2, num_classes=3),
}
