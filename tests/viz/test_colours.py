"""POS colours stay apart for colour-blind readers: CIELAB distances under simulated colour vision.

Simulation: Machado, Oliveira and Fernandes (2009), severity 1.0, applied in linear sRGB.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from attribution.viz.heatmap import UPOS_COLOURS

NORMAL = np.eye(3)
DEUTERANOPIA = np.array(
    [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]
)
PROTANOPIA = np.array(
    [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]
)
MIN_DELTA_E = 15.0  # CIE76; about 2.3 is "just noticeable", strips need far more


def linear(hex_colour: str) -> np.ndarray:
    rgb = np.array([int(hex_colour[k : k + 2], 16) for k in (1, 3, 5)]) / 255.0
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def lab(rgb_linear: np.ndarray) -> np.ndarray:
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = to_xyz @ rgb_linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def seen(hex_colour: str, vision: np.ndarray) -> np.ndarray:
    return lab(np.clip(vision @ linear(hex_colour), 0.0, 1.0))


def closest_pair(vision: np.ndarray) -> tuple[float, str, str]:
    best = (np.inf, "", "")
    for (name_1, c_1), (name_2, c_2) in itertools.combinations(UPOS_COLOURS.items(), 2):
        distance = float(np.linalg.norm(seen(c_1, vision) - seen(c_2, vision)))
        best = min(best, (distance, name_1, name_2))
    return best


@pytest.mark.parametrize(
    "name, vision", [("normal", NORMAL), ("deuteranopia", DEUTERANOPIA), ("protanopia", PROTANOPIA)]
)
def test_every_two_pos_colours_stay_apart(name: str, vision: np.ndarray) -> None:
    distance, first, second = closest_pair(vision)
    assert distance >= MIN_DELTA_E, f"{name}: {first} and {second} differ by only dE {distance:.1f}"


def test_the_simulation_catches_the_old_olive_triple() -> None:
    """The test is not blind: the previous palette's NOUN, CCONJ and PART merge under deuteranopia."""
    old = {"NOUN": "#59a14f", "CCONJ": "#b6992d", "PART": "#e15759"}
    seen_old = {k: seen(v, DEUTERANOPIA) for k, v in old.items()}
    worst = min(np.linalg.norm(seen_old[a] - seen_old[b]) for a, b in itertools.combinations(old, 2))
    assert worst < MIN_DELTA_E
