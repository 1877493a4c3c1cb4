"""One synthetic patient: where every structure of the upper abdomen lies, in mm.

The template is an adult abdomen in world RAS+ mm (+x patient's right, +y
anterior, +z superior; origin at the centre of the peritoneal cavity at the
level of the pancreas). :func:`sample_patient` scales it to a random cavity
(120-140 mm half-width, 80-100 mm half-depth) and torso length, then moves,
scales and turns each organ. Organs that must touch are placed against each
other and overlap by a few mm (the later-painted one owns the overlap):

* the pancreatic head sits in the duodenal C-loop against its 2nd part;
* the spleen lies against the gastric fundus, postero-lateral to it;
* the gallbladder neck lies inside the liver's visceral surface, its fundus
  below the liver edge;
* the oesophagus runs down in front of the aorta and ends in the cardia.

Tubes are ``(points (m, 3), radii (m,))``; ellipsoids ``(centre, semi-axes, rotation)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

import numpy as np

from niftykit.data.abdomen_shapes import ellipsoid, rotation, tube

__all__ = ["Patient", "sample_patient"]


@dataclass(eq=False)
class Patient:
    """Geometry of one synthetic patient (see the module docstring for the frame).

    Attributes:
        body: scalars of the body wall and skeleton (mm unless stated).
        shapes: structure name -> its tube or ellipsoid parameters.
        options: per-case choices (stomach content, gas levels, fatty pancreas...).
    """

    body: Dict[str, float]
    shapes: Dict[str, Any] = field(default_factory=dict)
    options: Dict[str, Any] = field(default_factory=dict)

    def body_outline(self) -> Tuple[float, float, float]:
        """``(half-width, half-depth, centre y)`` of the skin ellipse, mm."""
        b = self.body
        return b["muscle_a"] + b["fat_lat"], b["muscle_b"] + b["fat_ap"], b["muscle_y"]

    def z_range(self) -> Tuple[float, float]:
        """Lowest kidney pole and the right dome of the diaphragm (mm): what a scan must cover."""
        poles = [c[2] - 1.05 * s[2] for c, s, _ in (self.shapes["kidney_r"], self.shapes["kidney_l"])]
        return float(min(poles)), float(self.body["dome_r"])


def _placed(points: np.ndarray, scale: np.ndarray, rng: np.random.Generator, sd: float) -> np.ndarray:
    return np.asarray(points, dtype=float) * scale + rng.normal(0.0, sd, 3).clip(-2 * sd, 2 * sd)


def _against(anchor: np.ndarray, direction: np.ndarray, target: Tuple[np.ndarray, np.ndarray],
             depth: float) -> np.ndarray:
    """The point along ``anchor + s * direction`` whose distance to the tube ``target``
    is ``depth`` mm (outside it), searched over ``s`` in 0.5 mm steps."""
    unit = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    steps = np.arange(0.0, 200.0, 0.5)
    candidates = anchor[None, :] + steps[:, None] * unit[None, :]
    coords = tuple(candidates[:, k].astype(np.float32) for k in range(3))
    distance = tube(coords, *target)
    beyond = np.nonzero(distance >= depth)[0]
    return candidates[beyond[0] if beyond.size else -1]


def _liver_bottom(shapes: Dict[str, Any], point: np.ndarray) -> float:
    """Height (mm) of the liver's lower surface above ``point``'s x, y (the cut plane
    if the liver lobes do not reach there)."""
    level, slope = shapes["liver_plane"]
    heights = np.arange(-200.0, 200.0, 1.0)
    coords = (np.full(heights.size, point[0], np.float32), np.full(heights.size, point[1], np.float32),
              heights.astype(np.float32))
    lobes = [ellipsoid(coords, *shapes[name]) <= 1.0 for name in ("liver_right", "liver_left")]
    inside = (lobes[0] | lobes[1]) & (heights > level + slope * point[1])
    return float(heights[np.argmax(inside)]) if inside.any() else float(level + slope * point[1])


def _body(rng: np.random.Generator) -> Dict[str, float]:
    ac, bc = rng.uniform(120, 140), rng.uniform(80, 100)
    muscle, back = rng.uniform(8, 14), rng.uniform(40, 55)
    return {
        "cavity_a": ac, "cavity_b": bc, "muscle": muscle,
        "muscle_a": ac + muscle, "muscle_b": bc + (back + muscle) / 2, "muscle_y": (muscle - back) / 2,
        "fat_lat": rng.uniform(8, 45), "fat_ap": rng.uniform(10, 45),
        "spine_y": -bc + rng.uniform(10, 18), "sz": rng.uniform(0.9, 1.1),
        "dome_r": 0.0, "dome_l": 0.0,
        "rib_period": rng.uniform(26, 32), "rib_phase": rng.uniform(0, 30), "rib_thick": rng.uniform(7, 9),
        "vertebra_period": rng.uniform(30, 36), "vertebra_phase": rng.uniform(0, 36),
        "disc": rng.uniform(7, 10),
    }


def _solid_organs(rng: np.random.Generator, p: Patient, scale: np.ndarray) -> None:
    s = p.shapes
    size = rng.uniform(0.88, 1.12) * np.sqrt(scale[0] * scale[1])

    def organ(centre, semi, angles, sd=4.0, spread=0.1):
        axes = np.asarray(semi, dtype=float) * size * rng.uniform(1 - spread, 1 + spread, 3)
        turn = rotation(*(np.asarray(angles, dtype=float) + rng.normal(0.0, 6.0, 3).clip(-12, 12)))
        return _placed(centre, scale, rng, sd), axes, turn

    s["liver_right"] = organ((55, -5, 50), (72, 82, 78), (0, 0, 0))
    s["liver_left"] = organ((-12, 38, 68), (55, 38, 36), (0, -10, 0))
    s["liver_plane"] = (-18.0 * scale[2] + rng.normal(0, 5), 0.32 + rng.normal(0, 0.05))
    gb = (_placed((40, 22, 0), scale, rng, 4.0), _placed((52, 52, 0), scale, rng, 5.0))
    gb[0][2] = _liver_bottom(s, gb[0]) + rng.uniform(10, 18)
    gb[1][2] = _liver_bottom(s, gb[1]) - rng.uniform(5, 20)
    s["gallbladder"] = (np.stack(gb), np.array([9.0, 16.0]) * rng.uniform(0.7, 1.2))
    s["kidney_r"] = organ((68, p.body["spine_y"] + 25, -45), (25, 22, 52), (0, -15, 20), sd=5)
    s["kidney_l"] = organ((-68, p.body["spine_y"] + 25, -30), (25, 22, 52), (0, 15, -20), sd=5)
    stomach = s["stomach"]
    fundus = stomach[0][1] + np.array([0.0, 0.0, -8.0])
    spleen_dir = np.array([-1.0, rng.uniform(-0.9, -0.4), rng.uniform(-0.6, -0.2)])
    semi = np.array([22.0, 50.0, 45.0]) * size * rng.uniform(0.85, 1.2, 3)
    centre = _against(fundus, spleen_dir, stomach, semi[0] - rng.uniform(4, 8))
    axis_x = spleen_dir / np.linalg.norm(spleen_dir)
    axis_z = np.cross(axis_x, np.array([0.0, 1.0, 0.0]))
    axis_z *= np.sign(axis_z[2]) / np.linalg.norm(axis_z)
    turn = np.stack([axis_x, np.cross(axis_z, axis_x), axis_z], axis=1)
    s["spleen"] = (centre, semi, turn @ rotation(rng.uniform(-15, 15), 0, 0))
    liver_centre, liver_semi, _ = s["liver_right"]
    n_cysts = int(rng.integers(1, 3)) if rng.random() < 0.3 else 0
    s["liver_cysts"] = [(liver_centre + rng.uniform(-0.4, 0.4, 3) * liver_semi, np.full(3, rng.uniform(5, 15)), None)
                        for _ in range(n_cysts)]


def _hollow_organs(rng: np.random.Generator, p: Patient, scale: np.ndarray) -> None:
    s = p.shapes
    distension = rng.uniform(0.75, 1.2)
    stomach_pts = [(-55, -25, 80), (-62, -5, 58), (-55, 22, 35), (-38, 42, 15), (-12, 48, 5), (12, 40, 5)]
    stomach = _placed(stomach_pts, scale, rng, 5.0)
    s["stomach"] = (stomach, np.array([38, 36, 32, 26, 20, 13]) * distension * rng.uniform(0.9, 1.1))
    duodenum_pts = [(12, 40, 5), (40, 28, 2), (60, 10, -10), (62, 5, -40), (45, 8, -62), (10, 10, -66),
                    (-20, 12, -60), (-32, 15, -40)]
    duodenum = _placed(duodenum_pts, scale, rng, 4.0)
    duodenum[0] = stomach[-1]
    s["duodenum"] = (duodenum, np.array([13, 14, 13, 12, 12, 11, 11, 11]) * rng.uniform(0.85, 1.15))
    radii = np.array([17, 14, 11, 11, 10, 9]) * rng.uniform(0.85, 1.15)
    middle = (duodenum[2] + duodenum[3]) / 2
    head = _against(middle, (-1.0, 0.35, rng.uniform(-0.2, 0.2)), s["duodenum"], radii[0] - rng.uniform(5, 9))
    rest = _placed([(25, 22, -8), (5, 25, 0), (-25, 15, 8), (-55, -5, 15), (-78, -25, 22)], scale, rng, 4.0)
    s["pancreas"] = (np.vstack([head, rest]), radii)
    s["uncinate"] = (np.vstack([head, head + np.array([-16.0, -7.0, -16.0])]), np.array([radii[0] * 0.8, 8.0]))
    fundus, r_fundus = stomach[0], s["stomach"][1][0]
    gej = fundus + np.array([0.85, 0.3, -0.3]) * r_fundus
    aorta_x, aorta_y = -14.0 * scale[0], p.body["spine_y"] + 30
    s["esophagus"] = (np.array([(aorta_x + 4, aorta_y + 22, 400.0), (aorta_x, aorta_y + 24, gej[2] + 45),
                                (aorta_x - 12, aorta_y + 34, gej[2] + 15), gej]),
                      np.full(4, rng.uniform(7.5, 10.0)))


def _vessels(rng: np.random.Generator, p: Patient, scale: np.ndarray) -> None:
    s, yv = p.shapes, p.body["spine_y"]
    ax = -14.0 * scale[0] + rng.normal(0, 3)
    r_aorta = rng.uniform(9, 13)
    s["aorta"] = (np.array([(ax, yv + 30, 400.0), (ax, yv + 30, -40), (ax + 3, yv + 27, -400)]),
                  np.array([r_aorta, r_aorta * 0.9, r_aorta * 0.8]))
    ix = 24.0 * scale[0] + rng.normal(0, 3)
    s["ivc"] = (np.array([(ix - 4, yv + 40, 400.0), (ix, yv + 32, 40), (ix, yv + 30, -400)]),
                np.full(3, rng.uniform(9, 13)))
    confluence = _placed((8, 14, -3), scale, rng, 3.0)
    s["portal"] = (np.vstack([confluence, _placed([(30, 5, 20), (48, 4, 40)], scale, rng, 3.0)]),
                   np.full(3, rng.uniform(6, 8)))
    hilum = s["portal"][0][-1]
    s["portal_branches"] = [(np.vstack([hilum, _placed(end, scale, rng, 5.0)]), np.array([5.5, 3.0]))
                            for end in ((82, -5, 55), (5, 35, 62), (60, 30, 30))]
    top = np.array([ix - 4, yv + 38, p.body["dome_r"] - 12])
    s["hepatic_veins"] = [(np.vstack([top, _placed(end, scale, rng, 6.0)]), np.array([6.0, 2.5]))
                          for end in ((88, -10, 75), (45, 30, 85), (-15, 30, 80))]
    s["splenic_vein"] = (np.vstack([confluence, _placed([(-25, 1, 8), (-55, -19, 15), (-80, -37, 25)],
                                                         scale, rng, 3.0)]), np.full(4, rng.uniform(4, 6)))
    s["smv"] = (np.vstack([confluence, _placed([(8, 25, -40), (6, 38, -110)], scale, rng, 3.0)]),
                np.full(3, rng.uniform(5, 7)))
    sma = np.array([(-6.0, -5.0, -15.0), (-5.0, 25.0, -60.0), (-5.0, 35.0, -110.0)]) * scale
    s["sma"] = (np.vstack([(ax, yv + 35, 2.0), sma]), np.full(4, rng.uniform(3.5, 5)))
    ac = p.body["cavity_a"]
    low = -400.0
    s["colon"] = (np.array([(ac - 30, -15, low), (ac - 30, -10, 5), (ac - 40, 20, 14), (50, 55, 6), (0, 62, -10),
                            (-55, 50, 12), (-(ac - 30), -5, 35), (-(ac - 28), -20, 0), (-(ac - 28), -20, low)])
                  + rng.normal(0, 5, (9, 3)), rng.uniform(17, 25, 9))
    for side in (1.0, -1.0):
        s[f"psoas_{'r' if side > 0 else 'l'}"] = (
            np.array([(side * 30, yv + 6, -10.0), (side * 48, yv + 12, -120)]), np.array([3.0, 26.0]))


def sample_patient(rng: np.random.Generator) -> Patient:
    """Draw one patient: body habitus, organ sizes, positions, turns and contents."""
    p = Patient(_body(rng))
    b = p.body
    scale = np.array([b["cavity_a"] / 130.0, b["cavity_b"] / 90.0, b["sz"]])
    b["dome_r"] = 120.0 * b["sz"] + rng.normal(0, 8)
    b["dome_l"] = b["dome_r"] - rng.uniform(5, 25)
    _hollow_organs(rng, p, scale)
    _solid_organs(rng, p, scale)
    _vessels(rng, p, scale)
    p.options = {
        "stomach_gas_y": float(rng.uniform(15, 90)), "duodenum_gas_y": float(rng.uniform(25, 90)),
        "colon_gas_y": float(rng.uniform(-30, 40)), "stomach_content": str(rng.choice(["gi_fluid", "food"])),
        "pancreas_fat": float(rng.uniform(0.9, 2.6)), "bowel_top": float(rng.uniform(-25, 5)),
        "bowel_level": float(rng.uniform(0.0, 0.5)),
    }
    return p
