"""Earlier stages of an application (:meth:`BaseApplication.stages`, e.g. a cascade's
stage 1): trained before the application itself and attached as predict functions.

The application layer never imports the engine; the engine reads an application's stages,
trains the ones that are not current and gives the application one
:class:`~niftykit.engine.inference.Predictor` per stage, each restoring its stage's
latest checkpoint at its first call.
"""

from __future__ import annotations

import logging
from typing import Any

from niftykit.engine.inference import Predictor

__all__ = ["attach_stages"]

log = logging.getLogger("niftykit")


def attach_stages(app: Any, tf: Any, *, train: bool = False, overwrite: bool = False,
                  debug: bool = False) -> None:
    """Give ``app`` the predictors of its stages; with ``train``, train those not current.

    Args:
        app: the application.
        tf: the TensorFlow module.
        train: train each stage that :meth:`~BaseApplication.stage_trained` says is not
            current (before ``app`` itself trains).
        overwrite: a stage's earlier checkpoints may be replaced (as ``niftykit train
            --overwrite``); without it, a stage with other checkpoints is an error naming
            its folder.
        debug: keep TensorFlow's start-up logs.
    """
    stages = list(app.stages())
    if not stages:
        return
    if train:
        from niftykit.engine.trainer import train as train_stage

        for number, stage in enumerate(stages, start=1):
            folder = stage.config.system.model_dir
            if app.stage_trained(stage):
                log.info("stage %d of %d: reusing %s (its last checkpoint is current)",
                         number, len(stages) + 1, folder)
                continue
            log.info("stage %d of %d: training %s -> %s", number, len(stages) + 1,
                     stage.config.network.name, folder)
            train_stage(stage, overwrite=overwrite, debug=debug)
        log.info("stage %d of %d: training %s -> %s", len(stages) + 1, len(stages) + 1,
                 app.config.network.name, app.config.system.model_dir)
    app.attach_stages([Predictor(stage, tf) for stage in stages])
