"""Boulic–Thalmann walking kinematics, vectorised over (sample, time).

Conventions: body frame x forward, y left, z up; angles in radians; the gait phase p counts cycles
(p = 0 at left heel strike). Joint-angle curves are smooth periodic pchip curves through control points
chosen from the facts in REFERENCE §4 (hip +25°/−15°, knee peak ≈ 70°, shoulder swing 9.88·rv°,
pelvis torsion 4·rv°, vertical bounce 0.015·rv).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

# Segment lengths as fractions of the height H.
HEAD, HALF_SHOULDER, TORSO, HALF_HIP = 0.130, 0.259 / 2, 0.288, 0.191 / 2
THIGH, SHANK, FOOT, UPPER_ARM, FOREARM = 0.245, 0.246, 0.143, 0.188, 0.152
LEG = 0.491  # Ht = 0.491 H

# Ellipsoid radii (m) per segment; `girth` scales all but head and feet.
SEGMENTS: tuple[tuple[str, float, bool], ...] = (
    ("head", 0.10, False),
    ("torso", 0.15, True),
    ("l_shoulder", 0.06, True),
    ("r_shoulder", 0.06, True),
    ("l_upper_arm", 0.06, True),
    ("r_upper_arm", 0.06, True),
    ("l_forearm", 0.05, True),
    ("r_forearm", 0.05, True),
    ("l_hip", 0.07, True),
    ("r_hip", 0.07, True),
    ("l_thigh", 0.07, True),
    ("r_thigh", 0.07, True),
    ("l_shank", 0.06, True),
    ("r_shank", 0.06, True),
    ("l_foot", 0.05, False),
    ("r_foot", 0.05, False),
)
SEGMENT_NAMES = tuple(s[0] for s in SEGMENTS)


def _periodic_curve(points: list[tuple[float, float]], n: int = 1024) -> np.ndarray:
    """Tabulate a periodic pchip curve (degrees → radians) through (phase, value) points on [0, 1)."""
    p = np.array([x for x, _ in points])
    v = np.array([y for _, y in points])
    ext_p = np.concatenate([p[:-1] - 1, p, p[1:] + 1])
    ext_v = np.concatenate([v[:-1], v, v[1:]])
    grid = np.arange(n) / n
    return np.deg2rad(PchipInterpolator(ext_p, ext_v)(grid))


HIP_CURVE = _periodic_curve([(0, 25), (0.3, 5), (0.52, -15), (0.62, -8), (0.85, 27), (1, 25)])
KNEE_CURVE = _periodic_curve([(0, 3), (0.15, 18), (0.4, 4), (0.6, 38), (0.73, 70), (0.9, 20), (1, 3)])
ANKLE_CURVE = _periodic_curve([(0, 0), (0.08, -6), (0.45, 10), (0.62, -16), (0.75, 0), (1, 0)])
_GRID = np.arange(len(HIP_CURVE)) / len(HIP_CURVE)


def _curve(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    return np.interp(phase, _GRID, table, period=1.0)


@dataclass
class WalkBatch:
    """Per-sample walking parameters, each an array of shape (B,) unless noted."""

    height: np.ndarray
    rel_velocity: np.ndarray
    arm_swing: np.ndarray
    knee_amp: np.ndarray
    torsion_amp: np.ndarray
    lr_amp: np.ndarray
    lr_phase: np.ndarray
    girth: np.ndarray
    start_phase: np.ndarray
    jitter_amp: np.ndarray  # (B, 3) cadence jitter sinusoid amplitudes
    jitter_freq: np.ndarray  # (B, 3) Hz
    jitter_phase: np.ndarray  # (B, 3) rad
    aspect: np.ndarray  # rad, walking direction vs. line of sight (0 = straight at the radar)
    start_range: np.ndarray  # m

    @property
    def leg_length(self) -> np.ndarray:
        return LEG * self.height

    @property
    def cycle_length(self) -> np.ndarray:
        """Relative cycle (stride) length rlc = 1.346·√rv."""
        return 1.346 * np.sqrt(self.rel_velocity)

    @property
    def cycle_duration(self) -> np.ndarray:
        """Gait cycle duration dc = rlc / rv, in seconds."""
        return self.cycle_length / self.rel_velocity

    @property
    def velocity(self) -> np.ndarray:
        """Mean walking speed V = rv·Ht in m/s."""
        return self.rel_velocity * self.leg_length


def _gait_phase(b: WalkBatch, t: np.ndarray) -> np.ndarray:
    """Cycle count p(t) = p0 + ∫ (1 + ε(τ)) / dc dτ with smooth cadence jitter ε (closed form)."""
    w = 2 * np.pi * b.jitter_freq[:, :, None]
    ph = b.jitter_phase[:, :, None]
    integral_eps = (b.jitter_amp[:, :, None] * (np.cos(ph) - np.cos(w * t + ph)) / w).sum(1)
    return b.start_phase[:, None] + (t[None] + integral_eps) / b.cycle_duration[:, None]


def _rot_z(v: tuple[np.ndarray, ...], ang: np.ndarray) -> tuple[np.ndarray, ...]:
    c, s = np.cos(ang), np.sin(ang)
    return (c * v[0] - s * v[1], s * v[0] + c * v[1], v[2])


def _sagittal(angle: np.ndarray, length: np.ndarray, yaw: np.ndarray) -> tuple[np.ndarray, ...]:
    """Vector of `length` hanging down, swung forward by `angle`, then turned by `yaw` about z."""
    return _rot_z((length * np.sin(angle), np.zeros_like(angle), -length * np.cos(angle)), yaw)


def _add(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def body_joints(b: WalkBatch, t: np.ndarray) -> dict[str, tuple[np.ndarray, ...]]:
    """Joint positions in the body frame (origin on the floor below the mean pelvis), each (x, y, z)
    with arrays of shape (B, T). The forward progression is added by `world_segments`."""
    p = _gait_phase(b, t)
    rv = b.rel_velocity[:, None]
    H = b.height[:, None]
    ht = b.leg_length[:, None]
    zero = np.zeros_like(p)

    # Pelvis: vertical bounce twice a cycle, lateral sway once, small forward surge; torsion about z.
    bounce = ht * 0.015 * rv * np.sin(2 * np.pi * (2 * p - 0.35))
    sway = ht * 0.032 * np.sin(2 * np.pi * (p - 0.1))
    surge = ht * 0.021 * np.sin(2 * np.pi * (2 * p + 0.25))
    pelvis = (surge, sway, ht + bounce)
    torsion = -np.deg2rad(4.0) * rv * b.torsion_amp[:, None] * np.cos(2 * np.pi * p)
    tilt = np.deg2rad(2.0) * (1 + np.sin(2 * np.pi * (2 * p - 0.1)))

    neck = _add(pelvis, (TORSO * H * np.sin(tilt), zero, TORSO * H * np.cos(tilt)))
    joints = {"pelvis": pelvis, "neck": neck, "head_top": _add(neck, (zero, zero, HEAD * H + zero))}

    for side, sign in (("l", 1.0), ("r", -1.0)):
        right = side == "r"
        leg_p = p + (b.lr_phase[:, None] if right else 0.0)
        amp = b.lr_amp[:, None] if right else 1.0
        hip_ang = amp * _curve(HIP_CURVE, leg_p)
        knee_ang = amp * b.knee_amp[:, None] * _curve(KNEE_CURVE, leg_p)
        ankle_ang = _curve(ANKLE_CURVE, leg_p)
        hip = _add(pelvis, _rot_z((zero, sign * HALF_HIP * H + zero, zero), torsion))
        knee = _add(hip, _sagittal(hip_ang, THIGH * H, torsion))
        shank_ang = hip_ang - knee_ang
        ankle = _add(knee, _sagittal(shank_ang, SHANK * H, torsion))
        foot_ang = shank_ang + ankle_ang
        toe = _add(ankle, _rot_z((FOOT * H * np.cos(foot_ang), zero, FOOT * H * np.sin(foot_ang)), torsion))

        # Arms swing against the leg of the same side; thorax counter-rotates against the pelvis.
        swing = np.deg2rad(9.88) * rv * b.arm_swing[:, None]
        sh_ang = -swing * np.cos(2 * np.pi * leg_p)
        el_ang = np.deg2rad(15.0) + 0.8 * (sh_ang + swing)
        shoulder = _add(neck, _rot_z((zero, sign * HALF_SHOULDER * H + zero, zero), -0.5 * torsion))
        elbow = _add(shoulder, _sagittal(sh_ang, UPPER_ARM * H, -0.5 * torsion))
        wrist = _add(elbow, _sagittal(sh_ang + el_ang, FOREARM * H, -0.5 * torsion))
        joints.update({f"{side}_hip": hip, f"{side}_knee": knee, f"{side}_ankle": ankle, f"{side}_toe": toe,
                       f"{side}_shoulder": shoulder, f"{side}_elbow": elbow, f"{side}_wrist": wrist})
    return joints


_SEGMENT_ENDS = {
    "head": ("neck", "head_top"),
    "torso": ("pelvis", "neck"),
    **{f"{s}_shoulder": ("neck", f"{s}_shoulder") for s in "lr"},
    **{f"{s}_upper_arm": (f"{s}_shoulder", f"{s}_elbow") for s in "lr"},
    **{f"{s}_forearm": (f"{s}_elbow", f"{s}_wrist") for s in "lr"},
    **{f"{s}_hip": ("pelvis", f"{s}_hip") for s in "lr"},
    **{f"{s}_thigh": (f"{s}_hip", f"{s}_knee") for s in "lr"},
    **{f"{s}_shank": (f"{s}_knee", f"{s}_ankle") for s in "lr"},
    **{f"{s}_foot": (f"{s}_ankle", f"{s}_toe") for s in "lr"},
}


def world_segments(b: WalkBatch, t: np.ndarray, radar_height: float) -> tuple[np.ndarray, np.ndarray]:
    """Segment centres and half-axis vectors in radar coordinates, each (B, T, S, 3).

    The radar sits at (0, 0, radar_height); a walker starts at start_range on the x axis and walks at
    `aspect` to the line of sight, towards the radar."""
    joints = body_joints(b, t)
    p = _gait_phase(b, t)
    travelled = (b.cycle_length * b.leg_length)[:, None] * (p - b.start_phase[:, None])
    heading = np.pi - b.aspect[:, None]  # body x axis in the world, angle from +x
    ch, sh = np.cos(heading), np.sin(heading)
    origin_x = b.start_range[:, None] + travelled * ch
    origin_y = travelled * sh

    def to_world(v: tuple[np.ndarray, ...], translate: bool) -> np.ndarray:
        x = ch * v[0] - sh * v[1] + (origin_x if translate else 0.0)
        y = sh * v[0] + ch * v[1] + (origin_y if translate else 0.0)
        z = v[2] - (radar_height if translate else 0.0)
        return np.stack([x, y, z], axis=-1)

    centres, halves = [], []
    for name in SEGMENT_NAMES:
        a, c = (joints[j] for j in _SEGMENT_ENDS[name])
        centres.append(to_world(tuple((u + w) / 2 for u, w in zip(a, c, strict=True)), True))
        halves.append(to_world(tuple((w - u) / 2 for u, w in zip(a, c, strict=True)), False))
    return np.stack(centres, axis=2), np.stack(halves, axis=2)


def segment_radii(b: WalkBatch) -> np.ndarray:
    """Equatorial ellipsoid radii (B, S) in metres."""
    base = np.array([r for _, r, _ in SEGMENTS])
    scaled = np.array([g for _, _, g in SEGMENTS])
    return base[None] * np.where(scaled[None], b.girth[:, None], 1.0)
