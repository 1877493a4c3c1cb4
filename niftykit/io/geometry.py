"""Geometry: from a file's voxel grid to the network's grid, and exactly back.

A :class:`Geometry` is planned once per subject from one header
(:func:`plan_geometry`), applied to each of the subject's sources with that
source's own interpolation order (:func:`apply_geometry`), and inverted on the
network's output (:func:`invert_geometry`). Four steps, in this order:

0. **Crop** to a box ``[start, stop)`` of the file's voxel grid (``crop_box_file``,
   :mod:`niftykit.io.crop`; e.g. the rib-cage box of Gibson et al.), before anything else:
   a slice, so exact, with the affine moved to the box's first voxel. Undone by padding
   the output back to the file's grid with a fill value per channel (0 for labels).
1. **Reorient** to ``axcodes`` (e.g. ``("R", "A", "S")``): a transpose and flips
   of the voxel axes chosen by :mod:`nibabel.orientations`, so exact (no
   interpolation); array and affine equal nibabel's ``as_reoriented``.
2. **Resample** to ``pixdim`` (mm, along the reoriented axes): an axis of ``n``
   voxels of ``s`` mm gets ``max(1, round(n * s / pixdim))`` voxels. The new
   grid keeps the direction cosines and the *centre of the field of view*, so
   the physical position of the anatomy does not move. NiftyNet used
   ``scipy.ndimage.zoom``, which aligns the corner voxels instead and so shifts
   the anatomy by up to half a voxel, differently for each spacing (the image /
   label mismatches of NiftyNet issue #170). Values come from
   :func:`scipy.ndimage.affine_transform` with the source's order (0 for
   labels) and ``mode="nearest"`` at the border.
3. **Pad** by ``volume_padding_size`` and up to ``volume_padding_to_size``
   (:mod:`niftykit.io.padding`).

An axis of size 1 (the slice axis of a 2-D image) is never resampled or
padded, and reorientation keeps it last. Affines map voxel indices to RAS+ mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import nibabel as nib
import numpy as np
from nibabel import orientations as ornts
from scipy import ndimage

from niftykit.io.padding import PAD_MODES, crop_array, pad_array, pad_channels, pad_widths
from niftykit.typing import Shape3

__all__ = ["Geometry", "plan_geometry", "apply_geometry", "invert_geometry", "crop_volume",
           "orientation_codes"]

#: Target spacings within this many mm of the current spacing do not resample.
SPACING_ATOL_MM = 1e-6
_AXIS_PAIRS = ("RL", "AP", "SI")


def _shape3(values: Sequence[int]) -> Shape3:
    x, y, z = (int(v) for v in values)
    return x, y, z


def _reoriented_shape(shape: Shape3, ornt: np.ndarray) -> Shape3:
    new = [0, 0, 0]
    for axis, (target, _) in enumerate(ornt):
        new[int(target)] = shape[axis]
    return _shape3(new)


@dataclass(frozen=True, eq=False)
class Geometry:
    """How volumes go from their file's grid to the network's grid, and back.

    Attributes:
        original_shape: ``(x, y, z)`` voxels of the file.
        original_affine: ``(4, 4)`` voxel-to-mm affine of the file.
        ornt: ``(3, 2)`` nibabel orientation transform applied after the crop
            (identity when no ``axcodes``).
        resampled_shape: ``(x, y, z)`` after reorientation and resampling.
        resampled_affine: ``(4, 4)`` affine after reorientation and resampling.
        pad_before: voxels of padding before each axis.
        pad_after: voxels of padding after each axis.
        crop_before: voxels of the file cropped away before each axis (the box's start).
        crop_after: voxels of the file cropped away after each axis (size − the box's stop).
    """

    original_shape: Shape3
    original_affine: np.ndarray
    ornt: np.ndarray
    resampled_shape: Shape3
    resampled_affine: np.ndarray
    pad_before: Shape3 = (0, 0, 0)
    pad_after: Shape3 = (0, 0, 0)
    crop_before: Shape3 = (0, 0, 0)
    crop_after: Shape3 = (0, 0, 0)

    def __post_init__(self) -> None:
        for name in ("original_shape", "resampled_shape", "pad_before", "pad_after", "crop_before",
                     "crop_after"):
            object.__setattr__(self, name, _shape3(getattr(self, name)))
        for name, shape in (("original_affine", (4, 4)), ("ornt", (3, 2)), ("resampled_affine", (4, 4))):
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"Geometry.{name} must have shape {shape}, got {value.shape}")
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def crops(self) -> bool:
        """Whether the plan starts with a crop."""
        return any(self.crop_before) or any(self.crop_after)

    @property
    def cropped_shape(self) -> Shape3:
        """``(x, y, z)`` of the crop box (the file's shape without a crop)."""
        return _shape3(np.subtract(self.original_shape, self.crop_before) - np.array(self.crop_after))

    @property
    def cropped_affine(self) -> np.ndarray:
        """``(4, 4)`` affine of the crop box: voxel 0 is the file's voxel ``crop_before``."""
        return _shifted(self.original_affine, self.crop_before)

    def after_crop(self) -> "Geometry":
        """The rest of the plan, from the crop box's grid on (``self`` when it does not crop)."""
        if not self.crops:
            return self
        return Geometry(self.cropped_shape, self.cropped_affine, self.ornt, self.resampled_shape,
                        self.resampled_affine, self.pad_before, self.pad_after)

    @property
    def reoriented_shape(self) -> Shape3:
        """``(x, y, z)`` after the crop and reorientation."""
        return _reoriented_shape(self.cropped_shape, self.ornt)

    @property
    def reoriented_affine(self) -> np.ndarray:
        """``(4, 4)`` affine after the crop and reorientation (as nibabel's ``as_reoriented``)."""
        return self.cropped_affine @ ornts.inv_ornt_aff(self.ornt, self.cropped_shape)

    @property
    def resamples(self) -> bool:
        """Whether the resampling step interpolates (False: reorient and pad only)."""
        return self.resampled_shape != self.reoriented_shape or not np.array_equal(
            self.resampled_affine, self.reoriented_affine
        )

    @property
    def shape(self) -> Shape3:
        """``(x, y, z)`` of the final (padded) grid."""
        return _shape3(np.add(self.resampled_shape, self.pad_before) + np.array(self.pad_after))

    @property
    def affine(self) -> np.ndarray:
        """``(4, 4)`` affine of the final grid: voxel 0 lies ``pad_before`` voxels before the resampled one."""
        return _shifted(self.resampled_affine, -np.asarray(self.pad_before))


def _shifted(affine: np.ndarray, voxels: Sequence[float]) -> np.ndarray:
    """The affine of the grid whose voxel 0 is ``affine``'s voxel ``voxels``."""
    shift = np.eye(4)
    shift[:3, 3] = np.asarray(voxels, dtype=np.float64)
    return affine @ shift


def orientation_codes(affine: np.ndarray) -> tuple[str, str, str]:
    """Axis codes of a voxel-to-mm affine, e.g. ``("R", "A", "S")`` (nibabel's ``aff2axcodes``)."""
    x, y, z = nib.aff2axcodes(np.asarray(affine, dtype=np.float64))
    return str(x), str(y), str(z)


def _check_axcodes(axcodes: Sequence[str]) -> tuple[str, str, str]:
    codes = tuple(str(code).upper() for code in axcodes)
    pairs = sorted(next((i for i, pair in enumerate(_AXIS_PAIRS) if len(c) == 1 and c in pair), -1) for c in codes)
    if len(codes) != 3 or pairs != [0, 1, 2]:
        raise ValueError(
            f"invalid axcodes {tuple(axcodes)!r}: give one of R/L, one of A/P and one of S/I, "
            "e.g. ('R', 'A', 'S') or NiftyNet's ('A', 'R', 'S')"
        )
    return codes[0], codes[1], codes[2]


def _orientation(shape: Shape3, affine: np.ndarray, axcodes: Sequence[str] | None) -> np.ndarray:
    """The ``(3, 2)`` orientation transform to ``axcodes``; a 2-D image keeps its slice axis last."""
    if axcodes is None:
        return np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    target = ornts.axcodes2ornt(_check_axcodes(axcodes))
    start = ornts.io_orientation(affine)
    if np.isnan(start).any():
        raise ValueError(f"cannot reorient: the affine has a degenerate (zero) voxel axis:\n{affine}")
    if shape[2] == 1:  # in-plane axes in the order the target asks for; the slice axis stays last
        rows = [int(np.flatnonzero(target[:, 0] == start[axis, 0])[0]) for axis in range(3)]
        target = target[sorted(rows[:2]) + rows[2:]]
    return ornts.ornt_transform(start, target)


def _target_spacing(pixdim: float | Sequence[float], shape: Shape3) -> np.ndarray:
    values = np.atleast_1d(np.asarray(pixdim, dtype=np.float64))
    if values.size == 1:
        values = np.repeat(values, 3)
    elif values.size == 2 and shape[2] == 1:
        values = np.append(values, 1.0)  # the slice axis is never resampled
    if values.shape != (3,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"pixdim must be 3 spacings (x, y, z) in mm, all > 0, got {pixdim!r}")
    return values


def _resampled_grid(shape: Shape3, affine: np.ndarray, pixdim: np.ndarray) -> tuple[Shape3, np.ndarray]:
    """Grid of ``pixdim`` mm voxels covering the same field of view, with the same centre."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(spacing == 0):
        raise ValueError(f"cannot resample: the affine has a degenerate (zero) voxel axis:\n{affine}")
    size = np.asarray(shape)
    keep = (size == 1) | (np.abs(pixdim - spacing) <= SPACING_ATOL_MM)
    if keep.all():
        return shape, affine
    pixdim = np.where(keep, spacing, pixdim)
    new_size = np.where(keep, size, np.maximum(1, np.floor(size * spacing / pixdim + 0.5))).astype(int)
    new = np.eye(4)
    new[:3, :3] = affine[:3, :3] / spacing * pixdim
    centre = affine[:3, :3] @ ((size - 1) / 2.0) + affine[:3, 3]
    new[:3, 3] = centre - new[:3, :3] @ ((new_size - 1) / 2.0)
    return _shape3(new_size), new


def plan_geometry(
    shape: Sequence[int],
    affine: np.ndarray,
    *,
    axcodes: Sequence[str] | None = None,
    pixdim: float | Sequence[float] | None = None,
    padding: int | Sequence[int] = (0, 0, 0),
    pad_to: int | Sequence[int] = (0, 0, 0),
    crop: tuple[Sequence[int], Sequence[int]] | None = None,
) -> Geometry:
    """Plan a crop, reorientation, resampling and padding for one subject from its header.

    Args:
        shape: ``(x, y, z)`` voxels of the file; ``(x, y)`` means one slice, and
            values after z (e.g. channels) are ignored.
        affine: ``(4, 4)`` voxel-to-RAS+ mm affine of the file.
        crop: ``(start, stop)``, the half-open voxel box ``[start, stop)`` of the file's axes
            0, 1, 2 kept before the other steps; None keeps the whole file.
        axcodes: target orientation, e.g. ``("R", "A", "S")``; None keeps the file's axes.
        pixdim: target spacing in mm along the reoriented x, y, z (one value: isotropic;
            two values for a 2-D image); None, or within 1e-6 mm of the current spacing, does not resample.
        padding: ``volume_padding_size``, voxels added on each side of x, y, z.
        pad_to: ``volume_padding_to_size``, pad further (evenly, odd voxel after) to at least this size; 0 = off.

    Returns:
        The :class:`Geometry`.

    Raises:
        ValueError: bad axcodes, a non-positive pixdim, negative padding, a degenerate affine or
            a crop box that is empty or not inside the file's grid.
    """
    original = _shape3((tuple(shape) + (1, 1))[:3])
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine must be a finite (4, 4) matrix, got {affine!r}")
    cut_before, cut_after = _crop_widths(original, crop)
    cropped = _shape3(np.subtract(original, cut_before) - np.array(cut_after))
    cropped_affine = _shifted(affine, cut_before)
    ornt = _orientation(cropped, cropped_affine, axcodes)
    new_shape = _reoriented_shape(cropped, ornt)
    new_affine = cropped_affine @ ornts.inv_ornt_aff(ornt, cropped)  # as nibabel's as_reoriented
    if pixdim is not None:
        new_shape, new_affine = _resampled_grid(new_shape, new_affine, _target_spacing(pixdim, new_shape))
    before, after = pad_widths(new_shape, padding, pad_to)
    return Geometry(original, affine, ornt, new_shape, new_affine, before, after, cut_before, cut_after)


def _crop_widths(shape: Shape3, crop: tuple[Sequence[int], Sequence[int]] | None) -> tuple[Shape3, Shape3]:
    """Voxels cut before and after each axis by the box ``crop = (start, stop)``."""
    if crop is None:
        return (0, 0, 0), (0, 0, 0)
    start, stop = (tuple(int(v) for v in bound) for bound in crop)
    if len(start) != 3 or len(stop) != 3 or any(
            a < 0 or b > n or a >= b for a, b, n in zip(start, stop, shape)):
        raise ValueError(f"crop box {list(start)}:{list(stop)} must satisfy 0 <= start < stop <= size "
                         f"along each axis of a {'x'.join(map(str, shape))} grid")
    return _shape3(start), _shape3(np.subtract(shape, stop))


def crop_volume(array: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The plan's crop of a ``(x, y, z, channels)`` array on the file's grid (a view, or ``array``).

    Raises:
        ValueError: the array is not on the plan's file grid.
    """
    if tuple(array.shape[:3]) != geometry.original_shape:
        raise ValueError(f"array must be (x, y, z, channels) with (x, y, z) == {geometry.original_shape}, "
                         f"got {array.shape}")
    if not geometry.crops:
        return array
    return crop_array(array, geometry.crop_before, geometry.crop_after)


def _check_array(array: np.ndarray, shape: Shape3, order: int, what: str) -> None:
    if isinstance(order, bool) or order not in (0, 1, 2, 3):
        raise ValueError(f"interp_order must be 0, 1, 2 or 3, got {order!r}")
    if array.dtype.kind in "biu" and order != 0:
        raise ValueError(
            f"integer (label) arrays must use interp_order 0, got {order}; "
            "set interp_order: 0 for label sources, or cast intensities to float32"
        )
    if array.ndim != 4 or tuple(array.shape[:3]) != tuple(shape):
        raise ValueError(f"{what} must be (x, y, z, channels) with (x, y, z) == {tuple(shape)}, got {array.shape}")


def _resample(array: np.ndarray, source: np.ndarray, target: np.ndarray, shape: Shape3, order: int) -> np.ndarray:
    """Values of ``array`` (on ``source``'s grid) at the voxel centres of the ``target`` grid."""
    to_source = np.linalg.solve(source, target)  # target voxel -> source voxel
    matrix, offset = to_source[:3, :3], to_source[:3, 3]
    if np.allclose(matrix, np.diag(np.diag(matrix)), rtol=0.0, atol=1e-9 * np.abs(matrix).max()):
        matrix = np.diag(matrix)  # a per-axis zoom: scipy's fast separable path
    work = np.float64 if array.dtype == np.float64 else np.float32
    work = array.dtype if array.dtype.kind in "iu" else work
    out = np.empty(shape + array.shape[3:], dtype=work)
    for channel in range(array.shape[3]):
        out[..., channel] = ndimage.affine_transform(
            np.ascontiguousarray(array[..., channel], dtype=work),
            matrix,
            offset=offset,
            output_shape=shape,
            output=work,
            order=order,
            mode="nearest",
            prefilter=order > 1,
        )
    return out.astype(array.dtype, copy=False)


def apply_geometry(array: np.ndarray, geometry: Geometry, order: int, pad_mode: str = "minimum") -> np.ndarray:
    """Reorient, resample and pad one source of a subject.

    Args:
        array: ``(x, y, z, channels)`` on the file's grid (``geometry.original_shape``).
        geometry: the subject's plan from :func:`plan_geometry`.
        order: spline order 0-3 (``interp_order``); integer (label) arrays need 0.
        pad_mode: a :func:`numpy.pad` mode (``volume_padding_mode``), see :data:`~niftykit.io.padding.PAD_MODES`.

    Returns:
        A new C-contiguous ``geometry.shape + (channels,)`` array (never a view of
        ``array``), same dtype as ``array``.

    Raises:
        ValueError: wrong shape, order outside 0-3, order > 0 for an integer array, or an unknown pad mode.
    """
    _check_array(array, geometry.original_shape, order, "array")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"unknown volume_padding_mode {pad_mode!r}; use one of {', '.join(PAD_MODES)}")
    out = ornts.apply_orientation(crop_volume(array, geometry), geometry.ornt)
    if geometry.resamples:
        out = _resample(out, geometry.reoriented_affine, geometry.resampled_affine, geometry.resampled_shape, order)
    out = pad_array(out, geometry.pad_before, geometry.pad_after, pad_mode)
    return _new_array(out, array)


def invert_geometry(array: np.ndarray, geometry: Geometry, order: int,
                    fill: float | Sequence[float] = 0) -> np.ndarray:
    """Bring an array on the network's grid back onto the file's grid.

    Crops the padding, resamples back onto the reoriented file grid (when the
    plan resamples), undoes the reorientation exactly and, when the plan crops,
    pads the result back to the file's grid with ``fill``.

    Args:
        array: ``geometry.shape + (channels,)``, e.g. a network output.
        geometry: the plan the input was prepared with.
        order: spline order: 0 for labels, 1 for probabilities.
        fill: the value outside the crop box, one for all channels or one per channel
            (e.g. ``[1, 0, ..., 0]`` for class probabilities: background outside).

    Returns:
        A new C-contiguous ``geometry.original_shape + (channels,)`` array, same
        dtype, on ``geometry.original_affine``.

    Raises:
        ValueError: wrong shape, order outside 0-3, order > 0 for an integer array, or a
            ``fill`` that is neither one value nor one per channel.
    """
    _check_array(array, geometry.shape, order, "array")
    out = crop_array(array, geometry.pad_before, geometry.pad_after)
    if geometry.resamples:
        out = _resample(out, geometry.resampled_affine, geometry.reoriented_affine, geometry.reoriented_shape, order)
    inverse = np.zeros((3, 2))
    inverse[geometry.ornt[:, 0].astype(int)] = np.column_stack([np.arange(3), geometry.ornt[:, 1]])
    out = ornts.apply_orientation(out, inverse)
    if geometry.crops:
        out = pad_channels(out, geometry.crop_before, geometry.crop_after, fill)
    return _new_array(out, array)


def _new_array(result: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``result`` as a C-contiguous array that does not share memory with ``source``."""
    if np.may_share_memory(result, source):
        return np.array(result, order="C")
    return np.ascontiguousarray(result)
