"""Post-processing of segmentation outputs (numpy and scipy only, no TensorFlow).

``DenseCRF``: the fully connected 3-D CRF of DeepMedic (Kamnitsas et al., MedIA
2017), mean-field inference with Gaussian kernels in mm; ``PermutohedralLattice``:
the fast high-dimensional Gaussian filter it uses for the appearance kernel.
"""

from niftykit.postprocess.crf import DenseCRF
from niftykit.postprocess.lattice import PermutohedralLattice

__all__ = ["DenseCRF", "PermutohedralLattice"]
