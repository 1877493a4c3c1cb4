"""Tiny dense V-network case: three stacks as in the paper, narrow and shallow.

Batch-wise dropout is off here so that the shared training-step check compares
deterministic losses; ``tests/network/test_dense_vnet.py`` covers it.
"""

CASES = {
    "dense_vnet": dict(
        params=dict(n_initial_conv_channels=4, n_dense_channels=[2, 4, 4],
                    n_seg_channels=[3, 4, 4], n_down_channels=[4, 4, None],
                    dilation_rates=[[1, 2], [1, 1], [1]], prior_size=4, use_bdo=False),
        window=(16, 16, 16), invalid=(20, 16, 16),
        channels=1, num_classes=3),
}
