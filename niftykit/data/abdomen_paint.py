"""Paint a :class:`~niftykit.data.abdomen_anatomy.Patient` onto a tissue and a label map.

Order (later wins): body wall (skin, subcutaneous fat, muscle, visceral fat),
lung bases, heart and diaphragm above the domes, bowel loops and colon, psoas,
liver (with cysts and vessels), spleen, oesophagus, stomach, kidneys, aorta
and IVC, pancreas, mesenteric vessels, duodenum, gallbladder, then the spine
and ribs. Abdominal organs are confined to the peritoneal cavity below the
diaphragm. Labels use the public codes of Gibson et al.'s 90-case set
(:data:`LABELS`); everything else is 0, the right kidney included.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from niftykit.data.abdomen_anatomy import Patient
from niftykit.data.abdomen_shapes import KEEP, Canvas, ellipsoid, ellipsoid_bounds, tube, tube_bounds
from niftykit.data.abdomen_tissue import TISSUE as T

__all__ = ["LABELS", "paint_patient"]

#: Label code -> organ, as in the public label set (Zenodo record 1169361).
LABELS: Dict[int, str] = {1: "spleen", 3: "left_kidney", 4: "gallbladder", 5: "esophagus", 6: "liver",
                          7: "stomach", 11: "pancreas", 14: "duodenum"}
CODE = {name: code for code, name in LABELS.items()}
_WIDE = 400.0
#: ``(box, shape function on the box, mask inside the shape and the region)``.
Masked = Tuple[Tuple[slice, slice, slice], np.ndarray, np.ndarray]


def _everywhere(z_low: float = -_WIDE, z_high: float = _WIDE) -> Tuple[np.ndarray, np.ndarray]:
    return np.array([-_WIDE, -_WIDE, z_low]), np.array([_WIDE, _WIDE, z_high])


def _ellipse(x: np.ndarray, y: np.ndarray, centre_y: float, a: float, b: float) -> np.ndarray:
    """Squared normalised radius in an axial ellipse centred at ``(0, centre_y)`` (float32)."""
    q2 = (x * np.float32(1.0 / a)) ** 2
    q2 += ((y - np.float32(centre_y)) * np.float32(1.0 / b)) ** 2
    return q2


def _wall(c: Canvas, p: Patient) -> Tuple[np.ndarray, np.ndarray]:
    """Skin, fat, muscle and the visceral fat of the cavity; returns (body mask, cavity q**2)."""
    b = p.body
    x, y = c.grid.x, c.grid.y
    a, bb, yc = p.body_outline()
    outline = _ellipse(x, y, yc, a, bb)
    body = outline <= 1.0
    everything = (slice(None),) * 3
    c.paint(everything, body, T["skin"])
    c.paint(everything, outline <= (1.0 - 2.5 / min(a, bb)) ** 2, T["subcutaneous_fat"])
    c.paint(everything, _ellipse(x, y, b["muscle_y"], b["muscle_a"], b["muscle_b"]) <= 1.0, T["muscle"])
    cavity_q2 = _ellipse(x, y, 0.0, b["cavity_a"], b["cavity_b"])
    c.paint(everything, cavity_q2 <= 1.0, T["visceral_fat"])
    return body, cavity_q2


def _thorax(c: Canvas, p: Patient, cavity: np.ndarray) -> np.ndarray:
    """Lung bases, heart and diaphragm above the domes; returns the visceral mask below them."""
    b = p.body
    ac, bc, dr, dl = b["cavity_a"], b["cavity_b"], b["dome_r"], b["dome_l"]
    floor = min(dr, dl) - 80.0
    box = c.box(_everywhere(floor - 1.0))
    x, y, z = c.coords(box)
    yn = y * np.float32(1.0 / bc)
    depth = 20.0 * yn ** 2 + 40.0 * np.clip(-yn, 0.0, 1.0) ** 2
    right = dr - 45.0 * ((x - np.float32(0.45 * ac)) / np.float32(0.75 * ac)) ** 2
    left = dl - 45.0 * ((x + np.float32(0.45 * ac)) / np.float32(0.75 * ac)) ** 2
    dome = np.maximum(right, left) - depth
    np.maximum(dome, np.float32(floor), out=dome)
    inside = cavity[box]
    above = inside & (z > dome)
    c.paint(box, above, T["lung"])
    heart = ellipsoid((x, y, z), (-15.0, 20.0, dr + 45.0), (70.0, 55.0, 60.0)) <= 1.0
    c.paint(box, above & heart, T["heart"])
    c.paint(box, inside & (z <= dome) & (z > dome - 4.0), T["diaphragm"])
    visceral = cavity.copy()
    visceral[box] &= z <= dome - 4.0
    return visceral


def _bowel(c: Canvas, p: Patient, visceral: np.ndarray) -> None:
    """Small-bowel loops (a thresholded smooth random field) and the colon frame."""
    o, b = p.options, p.body
    box = c.box(_everywhere(z_high=o["bowel_top"]))
    _, y, _ = c.coords(box)
    region = visceral[box] & (y > np.float32(b["spine_y"] + 50.0))
    field = c.coarse[box]
    loops = region & (field > o["bowel_level"])
    c.paint(box, loops, T["gi_fluid"])
    c.paint(box, loops & (c.fine[box] > 1.6), T["gi_gas"])
    c.paint(box, loops & (field < o["bowel_level"] + 0.2), T["gi_wall"])
    points, radii = p.shapes["colon"]
    box = c.box(tube_bounds(points, radii))
    f = tube(c.coords(box), points, radii)
    inside = (f <= 0) & visceral[box]
    c.paint(box, inside, T["stool"])
    _, y, _ = c.coords(box)
    c.paint(box, inside & (y > np.float32(o["colon_gas_y"])), T["gi_gas"])
    c.paint(box, inside & (f > -3.0), T["gi_wall"])


def _tube_mask(c: Canvas, shape: Tuple[np.ndarray, np.ndarray], region: np.ndarray) -> Masked:
    points, radii = shape
    box = c.box(tube_bounds(points, radii))
    f = tube(c.coords(box), points, radii)
    return box, f, (f <= 0) & region[box]


def _ellipsoid_mask(c: Canvas, shape: Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]],
                    region: np.ndarray) -> Masked:
    centre, semi, rot = shape
    box = c.box(ellipsoid_bounds(centre, semi))
    q2 = ellipsoid(c.coords(box), centre, semi, rot)
    return box, q2, (q2 <= 1.0) & region[box]


def _liver(c: Canvas, p: Patient, visceral: np.ndarray) -> None:
    s = p.shapes
    level, slope = s["liver_plane"]
    for name in ("liver_right", "liver_left"):
        box, _, mask = _ellipsoid_mask(c, s[name], visceral)
        _, y, z = c.coords(box)
        c.paint(box, mask & (z > np.float32(level) + np.float32(slope) * y), T["liver"], CODE["liver"])
    for cyst in s["liver_cysts"]:
        box, _, mask = _ellipsoid_mask(c, cyst, visceral)
        c.paint(box, mask & (c.label[box] == CODE["liver"]), T["liver_cyst"], KEEP)
    for branches, tissue in ((s["portal_branches"], "portal_vein"), (s["hepatic_veins"], "hepatic_vein")):
        for branch in branches:
            box, _, mask = _tube_mask(c, branch, visceral)
            c.paint(box, mask & (c.label[box] == CODE["liver"]), T[tissue], KEEP)


def _kidney(c: Canvas, shape: Tuple[np.ndarray, np.ndarray, np.ndarray], visceral: np.ndarray,
            label: int) -> None:
    centre, semi, rot = shape
    box, q2, mask = _ellipsoid_mask(c, shape, visceral)
    c.paint(box, mask, T["kidney_cortex"], label)
    c.paint(box, mask & (q2 < 0.5) & (c.fine[box] > -0.5), T["kidney_medulla"], label)
    medial = rot[:, 0] * -np.sign(centre[0] * rot[0, 0])
    sinus = (np.asarray(centre) + medial * 0.55 * semi[0], semi * np.array([0.55, 0.45, 0.5]), rot)
    sinus_q2 = ellipsoid(c.coords(box), *sinus)
    c.paint(box, mask & (sinus_q2 <= 1.0), T["renal_sinus_fat"], 0)
    c.paint(box, mask & (sinus_q2 <= 0.3), T["urine"], label)


def _organs(c: Canvas, p: Patient, visceral: np.ndarray, cavity: np.ndarray) -> None:
    s, o = p.shapes, p.options
    _liver(c, p, visceral)
    box, _, mask = _ellipsoid_mask(c, s["spleen"], visceral)
    c.paint(box, mask, T["spleen"], CODE["spleen"])
    box, _, mask = _tube_mask(c, s["esophagus"], cavity)
    c.paint(box, mask, T["esophagus"], CODE["esophagus"])
    box, f, mask = _tube_mask(c, s["stomach"], visceral)
    c.hollow(box, f, mask, 4.5, (T["gi_wall"], T[o["stomach_content"]], T["gi_gas"]),
             o["stomach_gas_y"], CODE["stomach"])
    _kidney(c, s["kidney_r"], visceral, 0)
    _kidney(c, s["kidney_l"], visceral, CODE["left_kidney"])
    for name in ("aorta", "ivc"):
        box, _, mask = _tube_mask(c, s[name], cavity)
        c.paint(box, mask, T[name])
    for name in ("pancreas", "uncinate"):
        box, _, mask = _tube_mask(c, s[name], visceral)
        c.paint(box, mask, T["pancreas"], CODE["pancreas"])
        c.paint(box, mask & (c.fine[box] > o["pancreas_fat"]), T["pancreas_fat"], CODE["pancreas"])
    for name, tissue in (("portal", "portal_vein"), ("splenic_vein", "portal_vein"), ("smv", "portal_vein"),
                         ("sma", "artery")):
        box, _, mask = _tube_mask(c, s[name], visceral)
        c.paint(box, mask, T[tissue])
    box, f, mask = _tube_mask(c, s["duodenum"], visceral)
    c.hollow(box, f, mask, 3.0, (T["gi_wall"], T["gi_fluid"], T["gi_gas"]), o["duodenum_gas_y"],
             CODE["duodenum"])
    box, f, mask = _tube_mask(c, s["gallbladder"], visceral)
    c.hollow(box, f, mask, 2.5, (T["gallbladder_wall"], T["bile"], T["bile"]), np.inf, CODE["gallbladder"])


def _spine(c: Canvas, p: Patient) -> None:
    b = p.body
    yv = b["spine_y"]
    box = c.box((np.array([-60.0, yv - 75.0, -_WIDE]), np.array([60.0, yv + 25.0, _WIDE])))
    x, y, z = c.coords(box)
    level = np.mod(z - np.float32(b["vertebra_phase"]), np.float32(b["vertebra_period"]))
    body_q2 = _ellipse(x, y, yv, 22.0, 17.0)
    vertebra = body_q2 <= 1.0
    c.paint(box, vertebra, T["cortical_bone"])
    c.paint(box, vertebra & (body_q2 < 0.75), T["cancellous_bone"])
    c.paint(box, vertebra & (level < np.float32(b["disc"])), T["disc"])
    canal = x ** 2 + (y - np.float32(yv - 27.0)) ** 2
    c.paint(box, (canal <= 15.0 ** 2) & (y < np.float32(yv - 12.0)), T["cancellous_bone"])
    c.paint(box, canal <= 9.0 ** 2, T["csf"])
    period = np.float32(b["vertebra_period"])
    processes = (np.abs(x) < 45.0) & (np.abs(y - np.float32(yv - 24.0)) < 5.0)
    processes &= (level > 0.35 * period) & (level < 0.65 * period)
    spinous = (np.abs(x) < 4.0) & (y < np.float32(yv - 38.0)) & (y > np.float32(yv - 68.0))
    c.paint(box, processes | spinous, T["cancellous_bone"])


def _ribs(c: Canvas, p: Patient, cavity_q2: np.ndarray) -> None:
    b = p.body
    ac, bc = b["cavity_a"], b["cavity_b"]
    thick = min(b["muscle"] - 1.0, 9.0)
    ring = (cavity_q2 > 1.0) & (cavity_q2 <= (1.0 + thick / min(ac, bc)) ** 2)
    x, y, z = c.grid.x[ring], c.grid.y[ring], c.grid.z[ring]
    turn = np.abs(np.arctan2(x * np.float32(bc / ac), -y))  # 0 at the spine, pi at the sternum
    along = z + np.float32(0.35 * (ac + bc) / 2) * turn  # ribs descend from the spine forwards
    floor = -40.0 * b["sz"] + 40.0 * turn
    rib = np.mod(along - np.float32(b["rib_phase"]), np.float32(b["rib_period"])) < np.float32(b["rib_thick"])
    rib &= along > floor
    rib &= ~((np.abs(x) < 25.0) & (y > 0)) & ~((np.abs(x) < 45.0) & (y < np.float32(b["spine_y"] + 20.0)))
    values = c.tissue[ring]
    values[rib] = T["rib"]
    c.tissue[ring] = values


def paint_patient(c: Canvas, p: Patient) -> Tuple[np.ndarray, np.ndarray]:
    """Paint every structure of ``p``; returns ``(body mask, cavity q**2)`` (full volume)."""
    body, cavity_q2 = _wall(c, p)
    cavity = cavity_q2 <= 1.0
    visceral = _thorax(c, p, cavity)
    _bowel(c, p, visceral)
    for name in ("psoas_r", "psoas_l"):
        box, _, mask = _tube_mask(c, p.shapes[name], cavity)
        c.paint(box, mask, T["muscle"])
    _organs(c, p, visceral, cavity)
    _spine(c, p)
    _ribs(c, p, cavity_q2)
    return body, cavity_q2
