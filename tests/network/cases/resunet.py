CASES = {
    "resunet": dict(params=dict(channels=[4, 8, 16], strides=[2, 2], num_res_units=1),
                    window=(8, 8, 12), invalid=(10, 8, 12), channels=1, num_classes=3),
}
