"""Worked examples of subclassing a niftykit application for a new task.

Each module is one task, selected from a config by its dotted path
(``application: applications.<module>:<Class>``), with a commented config in
``configs/example_<module>.yaml`` and an end-to-end test in
``tests/applications/``; ``docs/writing_an_application.md`` walks through them.

* :mod:`applications.boundary_seg` - segmentation with an extra output channel
  (the label boundary, derived on the fly) and a weighted extra loss term;
* :mod:`applications.lesion_volume` - per-image regression of a lesion volume
  in mL, computed from the label files (no CSV of targets);
* :mod:`applications.autoencoder` - NiftyNet's ``net_autoencoder``: a
  convolutional VAE with ``encode``, ``encode-decode`` and ``sample`` inference;
* :mod:`applications.weak_localisation` - classification trained on image-level
  labels that also writes class activation maps (``configs/method_weak_cam.yaml``;
  data: ``python -m niftykit.data.weak DIR``);
* :mod:`applications.encoder_classifier` - a classifier whose encoder matches the
  autoencoder's, for pre-training then fine-tuning
  (``configs/method_finetune_classifier.yaml``).

``python -m applications <module>`` writes the example's small data set where
its config looks for it. The package is found when the repository root is on
``sys.path``: run ``python -m niftykit ...`` (or set ``PYTHONPATH=.``) from the
repository root.
"""

__all__ = ["EXAMPLES"]

#: example module -> (application class, config file)
EXAMPLES = {
    "boundary_seg": ("BoundarySegmentationApplication", "configs/example_boundary_seg.yaml"),
    "lesion_volume": ("LesionVolumeApplication", "configs/example_lesion_volume.yaml"),
    "autoencoder": ("AutoencoderApplication", "configs/example_autoencoder.yaml"),
}
