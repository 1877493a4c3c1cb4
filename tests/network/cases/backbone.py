"""Tiny case for ``keras_backbone``: MobileNetV2 at width 0.35 on 32 × 32 windows."""

CASES = {
    "keras_backbone": dict(params=dict(backbone="MobileNetV2", backbone_args=dict(alpha=0.35),
                                       channel_adapter="conv"),
                           window=(32, 32, 1), invalid=(16, 32, 1), channels=1, num_classes=3,
                           spatial_rank=2),
}
