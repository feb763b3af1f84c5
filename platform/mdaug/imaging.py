"""Image helpers shared by the simulator, generator and reports: colormaps, encoding, labelled grids."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mdaug.storage import write_bytes

JET_KNOTS = (  # (values, intensities in [0, 1]) of red, green and blue: jet is linear between them
    ((0, 0.35, 0.66, 0.89, 1.0), (0, 0, 1, 1, 0.5)),
    ((0, 0.125, 0.375, 0.64, 0.91, 1.0), (0, 0, 1, 1, 0, 0)),
    ((0, 0.11, 0.34, 0.65, 1.0), (0.5, 1, 1, 0, 0)),
)


def jet_float(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (...) → jet RGB in [0, 1] (..., 3), unrounded."""
    x = np.clip(x, 0.0, 1.0)
    return np.stack([np.interp(x, xs, ys) for xs, ys in JET_KNOTS], axis=-1)


def jet(gray: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (H, W) to uint8 RGB (H, W, 3) with the jet colormap (piecewise linear)."""
    return np.round(jet_float(gray) * 255).astype(np.uint8)


def to_pil(gray: np.ndarray, colormap: str) -> Image.Image:
    """A [0, 1] image as 8-bit gray ('L') or jet RGB."""
    if colormap == "gray":
        return Image.fromarray(np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8), mode="L")
    if colormap == "jet":
        return Image.fromarray(jet(gray), mode="RGB")
    raise ValueError(f"unknown colormap {colormap!r}: use gray or jet")


def tensor_image(t, channels: str = "gray") -> Image.Image:
    """A (C, H, W) torch tensor in [-1, 1] → 8-bit PIL image: 'L' for one channel, 'RGB' for three, and the jet
    colours for one channel of pseudo-colour ('jet') data."""
    if channels == "jet" and t.shape[0] == 1:
        return Image.fromarray(jet(((t[0].float().clamp(-1, 1) + 1) / 2).numpy()), mode="RGB")
    arr = ((t.float().clamp(-1, 1) + 1) * 127.5).round().byte()
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0].numpy(), mode="L")
    return Image.fromarray(arr.permute(1, 2, 0).numpy(), mode="RGB")


def encode(img: Image.Image, image_format: str) -> bytes:
    """Deterministic PNG or JPEG (quality 95) bytes."""
    buf = io.BytesIO()
    if image_format == "png":
        img.save(buf, format="PNG", optimize=False, compress_level=6)
    elif image_format == "jpg":
        img.save(buf, format="JPEG", quality=95, subsampling=0)
    else:
        raise ValueError(f"unknown image format {image_format!r}: use png or jpg")
    return buf.getvalue()


def labelled_grid(rows: list[tuple[str, list[Image.Image]]], cell: int, out: Path | None = None,
                  caption: str | None = None) -> Image.Image:
    """One row per label: the label on the left, then its images at cell × cell pixels; a caption on top."""
    font = ImageFont.load_default(size=max(10, cell // 6))
    label_w = max(60, cell)
    top = 24 if caption else 0
    ncols = max((len(imgs) for _, imgs in rows), default=1)
    width = max(label_w + ncols * (cell + 2), 7 * len(caption or "") + 8)
    grid = Image.new("RGB", (width, top + len(rows) * (cell + 2)), "white")
    draw = ImageDraw.Draw(grid)
    if caption:
        draw.text((4, 12), caption, fill="black", font=ImageFont.load_default(size=12), anchor="lm")
    for r, (label, imgs) in enumerate(rows):
        y = top + r * (cell + 2)
        draw.text((4, y + cell // 2), label, fill="black", font=font, anchor="lm")
        for c, im in enumerate(imgs):
            grid.paste(im.convert("RGB").resize((cell, cell)), (label_w + c * (cell + 2), y))
    if out is not None:
        save_image(grid, out)
    return grid


def save_image(img: Image.Image, path: Path | str) -> None:
    """Save in the format the file's suffix names (.png, .jpg, …), whole or not at all (storage.write_bytes)."""
    buf = io.BytesIO()
    img.save(buf, format=Image.registered_extensions()[Path(path).suffix.lower()])
    write_bytes(path, buf.getbuffer())


def save_figure(fig, path: Path | str, **savefig: object) -> None:
    """A matplotlib figure as PNG, whole or not at all (rendered in memory, then storage.write_bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    write_bytes(path, buf.getbuffer())


def tiled_grid(items: list[tuple[str, Image.Image]], cell: int, cols: int = 8, out: Path | None = None) -> Image.Image:
    """Labelled tiles: each image with its label above it, `cols` per row."""
    font = ImageFont.load_default(size=max(10, cell // 8))
    label_h = max(14, cell // 6)
    rows = max(1, -(-len(items) // cols))
    grid = Image.new("RGB", (min(cols, len(items)) * (cell + 4) + 4, rows * (cell + label_h + 4) + 4), "white")
    draw = ImageDraw.Draw(grid)
    for k, (label, im) in enumerate(items):
        x, y = 4 + (k % cols) * (cell + 4), 4 + (k // cols) * (cell + label_h + 4)
        draw.text((x + cell // 2, y + label_h // 2), label, fill="black", font=font, anchor="mm")
        grid.paste(im.convert("RGB").resize((cell, cell)), (x, y + label_h))
    if out is not None:
        save_image(grid, out)
    return grid
