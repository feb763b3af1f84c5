"""Pseudo-colour data keeps its meaning: jet-coloured JPEGs are detected, inverted to the value each colour
encodes (equal to the gray rendering of the same recordings within JPEG noise), and generated images are
written back as jet JPEGs that invert to what was generated."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from mdaug.data.colormap import fit_error, invert
from mdaug.data.images import load_image, model_channels
from mdaug.data.validate import validate
from mdaug.generation import to_file_bytes
from mdaug.imaging import jet, jet_float
from mdaug.sim import SimConfig, simulate_dataset


def test_jet_jpegs_are_inverted_to_the_values_they_encode(tmp_path):
    gray, jet = tmp_path / "gray", tmp_path / "jet"
    simulate_dataset(gray, SimConfig(persons=2, per_person=3, size=64), progress=False)
    simulate_dataset(jet, SimConfig(persons=2, per_person=3, size=64, image_format="jpg", colormap="jet"),
                     progress=False)
    report = validate(jet, progress=False)
    assert report.channels == "jet" and report.colormap_fit < 8, report.colormap_fit
    assert "fit the jet colormap" in report.table()
    assert model_channels("jet", 1) == "jet" and model_channels("jet", 3) == "rgb"
    errors = []
    for f in sorted(jet.rglob("*.jpg")):
        values = load_image(f, "jet")
        truth = load_image(gray / f.relative_to(jet).with_suffix(".png"), "gray")
        assert values.shape == (1, 64, 64)
        errors.append(np.abs(values - truth).mean() / 2)  # in units of the [0, 1] value
        assert fit_error(np.asarray(Image.open(f).convert("RGB"))) < 8
    print(f"jet inversion error: mean {np.mean(errors):.4f}, worst {np.max(errors):.4f} of the value range")
    assert np.mean(errors) < 0.02 and np.max(errors) < 0.04
    # a generated one-channel image goes out as a jet JPEG and comes back as itself
    generated = torch.from_numpy(load_image(gray / "ID_1" / "s0000.png", "gray"))
    data = to_file_bytes(generated, "jet", "jpg")
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "JPEG" and decoded.mode == "RGB"
    (tmp_path / "g.jpg").write_bytes(data)
    assert np.abs(load_image(tmp_path / "g.jpg", "jet") - generated.numpy()).mean() / 2 < 0.02


def test_colour_data_that_fits_no_colormap_stays_rgb(tmp_path):
    rng = np.random.default_rng(0)
    for p in (1, 2):
        (tmp_path / f"ID_{p}").mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"ID_{p}" / f"{i}.png")
    report = validate(tmp_path, progress=False)
    assert report.channels == "rgb" and report.colormap_fit > 40 and "fit no known colormap" in report.table()


def test_inversion_finds_the_nearest_colour_on_the_curve():
    """Each pixel goes to the value whose jet colour is nearest to it: exact values for jet's own colours (one
    reading for its one stretch of constant blue), and for arbitrary colours no farther from the curve than the
    nearest of 200,001 densely sampled colours."""
    x = np.linspace(0, 1, 4001)
    recovered = invert(jet(x[None]))[0]
    blue = (x >= 0.11) & (x < 0.1255)  # pure blue (0.125–0.1255: green rounds to 0)
    assert np.abs(recovered - x)[~blue].max() < 1e-3  # uint8 rounding of the colour
    assert np.allclose(recovered[blue], 0.11)
    dense = jet_float(np.linspace(0, 1, 200_001)) * 255
    pixels = np.random.default_rng(0).integers(0, 256, (1, 400, 3), dtype=np.uint8)
    reached = np.linalg.norm(jet_float(invert(pixels))[0] * 255 - pixels[0], axis=1)
    nearest = np.sqrt(((pixels[0, :, None, :].astype(np.float64) - dense[None]) ** 2).sum(-1).min(1))
    assert np.all(reached <= nearest + 0.05), (reached - nearest).max()
