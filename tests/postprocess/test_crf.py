"""The dense CRF against an all-pairs reference on tiny volumes, and what it is for.

The reference computes every kernel value ``k(i, j)`` explicitly (``N × N``), so it
is exact; the CRF approximates only the appearance kernel (permutohedral lattice),
the smoothness kernel is an exact separable filter (truncated at 4 σ).

Tolerances. The lattice replaces each Gaussian by a blur on a lattice about one
standard deviation coarse: its normalised output (a weighted average of values in
[0, 1]) is off by up to a few hundredths where the kernel straddles an intensity
edge (measured here: at most 0.014, RMS 0.004). Times w_app = 5 that shifts a
logit by up to about 0.1, which mean field can carry further at voxels near a tie
between two classes. Measured on these volumes after 1–10 iterations: mean
absolute difference of the probabilities 0.001–0.005, at most 0.16 (at near-tie
voxels), labels equal at 99–100 % of the voxels. The bounds below are about 2×
those: mean < 0.01, labels ≥ 98 %, max < 0.3.
"""

import numpy as np
import pytest
from scipy import ndimage

from niftykit.postprocess import DenseCRF, PermutohedralLattice


def grid_mm(shape, spacing):
    """``(N, 3)`` voxel centres in mm, C order."""
    axes = [np.arange(n) * s for n, s in zip(shape, spacing)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def gaussian_matrix(features):
    squared = ((features[:, None, :] - features[None, :, :]) ** 2).sum(-1)
    return np.exp(-squared / 2.0)


def brute_force_crf(probabilities, image, spacing, iterations, smooth_weight, smooth_sigma,
                    appearance_weight, appearance_sigma, intensity_sigma, compatibility=None):
    """Mean field in the fully connected CRF with every pair's kernel written out."""
    shape, classes = probabilities.shape[:3], probabilities.shape[-1]
    position = grid_mm(shape, spacing)
    intensity = np.asarray(image, np.float64).reshape(len(position), -1)
    smooth = gaussian_matrix(position / np.asarray(smooth_sigma, float))
    appearance = gaussian_matrix(np.column_stack(
        [position / np.asarray(appearance_sigma, float), intensity / np.asarray(intensity_sigma, float)]))
    unary = np.log(np.maximum(probabilities.reshape(-1, classes).astype(np.float64), 1e-8))
    mu = 1.0 - np.eye(classes) if compatibility is None else np.asarray(compatibility, float)
    q = softmax(unary)
    for _ in range(iterations):
        message = (smooth_weight * smooth @ q / smooth.sum(1, keepdims=True)
                   + appearance_weight * appearance @ q / appearance.sum(1, keepdims=True))
        q = softmax(unary - message @ mu)
    return q.reshape(probabilities.shape)


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def tiny():
    """8 × 8 × 6 voxels, three classes with an intensity each, noisy probabilities."""
    rng = np.random.default_rng(1)
    shape = (8, 8, 6)
    labels = np.zeros(shape, int)
    labels[2:6, 2:6, 1:5] = 1
    labels[5:, :3] = 2
    image = np.choose(labels, [0.0, 1.0, 0.5]) + rng.normal(0.0, 0.1, shape)
    probabilities = 0.5 * rng.dirichlet(np.full(3, 2.0), size=shape) + 0.5 * np.eye(3)[labels]
    return probabilities.astype(np.float32), image.astype(np.float32), labels


SPACING = (1.0, 1.5, 2.5)
PARAMS = {"iterations": 5, "smooth_weight": 3.0, "smooth_sigma": 3.0, "appearance_weight": 5.0,
          "appearance_sigma": 5.0, "intensity_sigma": 0.3}


def crf_from(params, compatibility=None):
    return DenseCRF(params["iterations"], params["smooth_weight"], params["smooth_sigma"],
                    params["appearance_weight"], params["appearance_sigma"],
                    params["intensity_sigma"], compatibility=compatibility)


def test_lattice_filter_matches_all_pairs_gaussian(tiny):
    _, image, _ = tiny
    rng = np.random.default_rng(2)
    features = np.column_stack([grid_mm(image.shape, SPACING) / 3.0, image.reshape(-1, 1) / 0.3])
    values = rng.dirichlet(np.ones(3), size=len(features))
    exact = gaussian_matrix(features)
    lattice = PermutohedralLattice(features, chunk_size=100)  # several chunks
    approx = lattice.filter(values) / lattice.filter(np.ones(len(features)))[:, None]
    error = np.abs(approx - exact @ values / exact.sum(1, keepdims=True))
    assert error.max() < 0.04 and np.sqrt((error ** 2).mean()) < 0.006
    assert 0 < lattice.num_vertices < len(features)
    # unnormalised, the lattice is about a constant multiple of the exact sums
    ratio = lattice.filter(values[:, 0]) / (exact @ values[:, 0])
    assert np.ptp(ratio) / ratio.mean() < 0.4


def test_lattice_is_independent_of_the_chunking():
    features = np.random.default_rng(3).normal(size=(500, 3)) * 2.0
    values = np.random.default_rng(4).random((500, 2)).astype(np.float32)
    whole = PermutohedralLattice(features, chunk_size=1000).filter(values)
    np.testing.assert_allclose(PermutohedralLattice(features, chunk_size=37).filter(values),
                               whole, rtol=1e-5, atol=1e-6)


def assert_close_to_reference(result, exact):
    difference = np.abs(result - exact)
    assert difference.mean() < 0.01 and difference.max() < 0.3
    assert np.mean(result.argmax(-1) == exact.argmax(-1)) >= 0.98


@pytest.mark.parametrize("iterations", [1, 5])
def test_mean_field_matches_the_all_pairs_crf(tiny, iterations):
    probabilities, image, _ = tiny
    params = dict(PARAMS, iterations=iterations)
    exact = brute_force_crf(probabilities, image, SPACING, **params)
    result = crf_from(params)(probabilities, image, SPACING)
    assert result.dtype == np.float32 and result.shape == probabilities.shape
    assert_close_to_reference(result, exact)


def test_smoothness_kernel_alone_is_exact(tiny):
    probabilities, image, _ = tiny
    params = dict(PARAMS, appearance_weight=0.0, smooth_sigma=(2.0, 3.0, 4.0))
    exact = brute_force_crf(probabilities, image, SPACING, **params)
    np.testing.assert_allclose(crf_from(params)(probabilities, image, SPACING), exact, atol=2e-5)


def test_two_image_channels_each_with_its_sigma(tiny):
    probabilities, image, _ = tiny
    second = np.random.default_rng(5).normal(0.0, 0.2, image.shape).astype(np.float32)
    channels = np.stack([image, second], axis=-1)
    params = dict(PARAMS, intensity_sigma=(0.3, 0.5))
    exact = brute_force_crf(probabilities, channels, SPACING, **params)
    assert_close_to_reference(crf_from(params)(probabilities, channels, SPACING), exact)


def test_anisotropic_spacing_matches_the_reference_and_permutes_with_the_axes(tiny):
    probabilities, image, _ = tiny
    params = dict(PARAMS, appearance_weight=0.0, smooth_weight=6.0)
    crf = crf_from(params)
    anisotropic = crf(probabilities, image, (1.0, 1.0, 4.0))
    np.testing.assert_allclose(anisotropic, brute_force_crf(probabilities, image, (1.0, 1.0, 4.0),
                                                            **params), atol=2e-5)
    swapped = crf(probabilities.transpose(2, 1, 0, 3), image.transpose(2, 1, 0), (4.0, 1.0, 1.0))
    np.testing.assert_allclose(swapped.transpose(2, 1, 0, 3), anisotropic, atol=1e-5)


@pytest.mark.parametrize("kernel, tolerance", [
    ({"appearance_weight": 0.0}, 0.02),                           # exact filter
    ({"smooth_weight": 0.0, "appearance_sigma_mm": 3.0}, 0.3),    # lattice
])
def test_a_seed_reaches_as_far_in_mm_along_every_axis(kernel, tolerance):
    """One confident voxel in an undecided volume with 1 × 1 × 4 mm voxels: after one
    update its pull is the same 4 mm away along x, y (4 voxels) and z (1 voxel)."""
    shape, seed = (25, 25, 9), (12, 12, 4)
    probabilities = np.empty(shape + (2,), np.float32)
    probabilities[...] = (0.51, 0.49)
    probabilities[seed] = (0.01, 0.99)
    q = DenseCRF(iterations=1, **kernel)(probabilities, np.zeros(shape, np.float32),
                                         (1.0, 1.0, 4.0))[..., 1]
    pull = q - q[24, 24, 0]  # against a voxel out of reach
    four_mm = np.array([pull[16, 12, 4], pull[12, 16, 4], pull[12, 12, 5]])
    assert four_mm.min() > 0
    assert np.ptp(four_mm) / four_mm.mean() < tolerance
    # 1 mm along x pulls harder than 1 voxel (4 mm) along z: 2.3x for the exact kernels,
    # 1.5x through the lattice (one standard deviation coarse, it blurs the near field)
    assert pull[13, 12, 4] > 1.3 * pull[12, 12, 5]


def test_explicit_potts_matrix_equals_the_default(tiny):
    probabilities, image, _ = tiny
    potts = crf_from(PARAMS, compatibility=1.0 - np.eye(3))(probabilities, image, SPACING)
    np.testing.assert_allclose(potts, crf_from(PARAMS)(probabilities, image, SPACING), atol=1e-5)
    # a compatibility that lets classes 1 and 2 mix freely, against the all-pairs reference
    mixing = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.2], [1.0, 0.2, 0.0]])
    exact = brute_force_crf(probabilities, image, SPACING, **PARAMS, compatibility=mixing)
    assert_close_to_reference(crf_from(PARAMS, compatibility=mixing)(probabilities, image, SPACING),
                              exact)


def ball_case(seed=0, shape=(24, 24, 20), spacing=(1.0, 1.0, 1.5), flip=0.15):
    """A 7 mm ball (contrast 1, noise 0.15, as niftykit.data.make_shapes), and probabilities
    0.8 / 0.2 with a fraction of the voxels flipped."""
    rng = np.random.default_rng(seed)
    centre = (np.array(shape) - 1) / 2.0 * np.array(spacing)
    truth = np.linalg.norm(grid_mm(shape, spacing) - centre, axis=1).reshape(shape) < 7.0
    image = truth + rng.normal(0.0, 0.15, shape)
    foreground = np.where(truth, 0.8, 0.2)
    flipped = rng.random(shape) < flip
    foreground = np.where(flipped, 1.0 - foreground, foreground)
    probabilities = np.stack([1.0 - foreground, foreground], axis=-1)
    return probabilities.astype(np.float32), image.astype(np.float32), truth, spacing


def dice(a, b):
    return 2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def test_crf_removes_isolated_voxels_and_raises_dice():
    probabilities, image, truth, spacing = ball_case()
    before = probabilities.argmax(-1) == 1
    crf = DenseCRF(iterations=5, appearance_sigma_intensity=0.3)  # about 2 noise sd
    after = crf(probabilities, image, spacing).argmax(-1) == 1
    assert dice(before, truth) < 0.6  # measured 0.50 (15 % of the voxels flipped)
    assert dice(after, truth) > 0.97  # measured 0.997
    assert ndimage.label(before)[1] > 100 and ndimage.label(after)[1] == 1


def test_zero_probabilities_give_no_nan_and_rows_sum_to_one():
    probabilities, image, _, spacing = ball_case(seed=1)
    hard = np.eye(2, dtype=np.float32)[probabilities.argmax(-1)]  # exact zeros
    hard[:3] = 0.0  # voxels no window covered (fill_constant 0): all classes 0
    result = DenseCRF(iterations=3)(hard, image, spacing)
    assert np.all(np.isfinite(result))
    np.testing.assert_allclose(result.sum(-1), 1.0, atol=1e-5)
    assert np.all((result >= 0) & (result <= 1))
    # the uncovered slabs follow their neighbours instead of staying at one half
    assert np.abs(result[:3, ..., 1] - 0.5).mean() > 0.3


def test_no_iterations_return_the_normalised_input():
    probabilities, image, _, spacing = ball_case()
    doubled = probabilities.astype(np.float64) * 2.0  # float64 and unnormalised
    np.testing.assert_allclose(DenseCRF(iterations=0)(doubled, image, spacing), probabilities,
                               atol=1e-6)


def test_a_cropped_view_is_refined_like_a_copy():
    probabilities, image, _, spacing = ball_case()
    inner = (slice(2, 22), slice(1, 23), slice(3, 17))
    crf = DenseCRF(iterations=2)
    np.testing.assert_allclose(crf(probabilities[inner], image[inner], spacing),
                               crf(np.ascontiguousarray(probabilities[inner]),
                                   np.ascontiguousarray(image[inner]), spacing), atol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda p, i: DenseCRF()(p, i[:-1], (1, 1, 1)), "grid"),
    (lambda p, i: DenseCRF()(p, i, (1, 0, 1)), "spacing"),
    (lambda p, i: DenseCRF(compatibility=np.ones((3, 3)))(p, i, (1, 1, 1)), "compatibility"),
    (lambda p, i: DenseCRF(appearance_sigma_intensity=(1, 2, 3))(p, i, (1, 1, 1)), "channel"),
    (lambda p, i: DenseCRF()(p, np.where(i > 0, np.nan, i), (1, 1, 1)), "finite"),
    (lambda p, i: DenseCRF(smooth_sigma_mm=(1, 2))(p, i, (1, 1, 1)), "smooth_sigma_mm"),
])
def test_bad_arguments_say_what_is_wrong(call, message):
    probabilities, image, _, _ = ball_case()
    with pytest.raises(ValueError, match=message):
        call(probabilities, image)
