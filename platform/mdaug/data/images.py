"""Decoding and mode conversion shared by validation, ingest and evaluation.

Conversion rules (documented in the README):
- alpha (RGBA, LA, PA) is composited over black: a transparent pixel carries no energy;
- 16-bit and 32-bit integer gray (I;16, I) is scaled linearly from its full range 0..65535 to 0..255;
- palette (P) images are expanded to RGB first;
- 'gray' output averages colour images with ITU-R 601 luma weights; 'rgb' output repeats gray in 3 channels;
- 'jet' output inverts the jet colormap: one channel holding the value each pixel's colour encodes
  (mdaug.data.colormap), resized after the inversion (blending colours would leave the colormap).
"""

from __future__ import annotations

import io
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from mdaug.storage import is_uri, read_bytes

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
SINGLE_CHANNEL_MODES = frozenset({"1", "L", "LA", "I;16", "I;16B", "I;16L", "I", "F"})
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # larger declared sizes are refused before decoding (PIL's bomb threshold)


class ImageReadError(ValueError):
    """A file that cannot be used as an image; `kind` is the problem kind `mdaug validate` reports."""

    def __init__(self, path: Path | str, kind: str, reason: str) -> None:
        self.path, self.kind, self.reason = path if is_uri(path) else Path(path), kind, reason
        super().__init__(f"{printable(str(path))}: {reason} [{kind}]; `mdaug validate ROOT` lists every such file")


def printable(text: str) -> str:
    """A file name as it can be printed: undecodable bytes and control characters escaped."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def check_file(path: Path) -> None:
    """Raise ImageReadError unless path is a regular file that can be opened (links are followed)."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        kind = "broken link" if path.is_symlink() else "cannot be read"
        raise ImageReadError(path, "unreadable", f"{kind} ({err.strerror or err})") from None
    if stat.S_ISDIR(mode):
        raise ImageReadError(path, "unreadable", "a link to a folder; links inside person folders are not followed")
    if not stat.S_ISREG(mode):
        raise ImageReadError(path, "unreadable", "not a regular file (a pipe, socket or device)")


def _source(path: Path | str) -> Path | io.BytesIO:
    """What PIL opens: a checked local file, or the bytes of a stored object (s3://…)."""
    if not is_uri(path):
        check_file(Path(path))
        return Path(path)
    try:
        return io.BytesIO(read_bytes(path))
    except OSError as err:
        raise ImageReadError(path, "unreadable", f"cannot be read ({err})") from None


def open_image(path: Path | str) -> Image.Image:
    """Decode a whole image file (a local path or a storage URI); every refusal, the OS's or PIL's, for any
    reason, is an ImageReadError."""
    source = _source(path)
    try:
        with warnings.catch_warnings():  # PIL's complaints about a damaged file become its reason, not noise
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise Image.DecompressionBombError(f"{im.width}x{im.height} is {im.width * im.height} pixels")
                im.load()
                return im.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageReadError(path, "too_large", f"declared size above the limit of {MAX_PIXELS} pixels ({err}); "
                             "raise mdaug.data.images.MAX_PIXELS for such data") from None
    except PermissionError as err:
        raise ImageReadError(path, "unreadable", f"cannot be read ({err.strerror})") from None
    except Image.UnidentifiedImageError:
        raise ImageReadError(path, "corrupt", "not a decodable image (unknown or damaged header)") from None
    except MemoryError:
        raise ImageReadError(path, "too_large", "decoding it needs more memory than there is") from None
    except Exception as err:  # PIL raises many types: OSError, SyntaxError, struct.error, IndexError, …
        raise ImageReadError(path, "corrupt", f"decoding failed: {type(err).__name__}: {err}") from None


def _drop_alpha(img: Image.Image) -> Image.Image:
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        base = "L" if img.mode == "LA" else "RGB"
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba).convert(base)
    return img


def convert_mode(img: Image.Image, channels: str) -> Image.Image:
    """Return an 8-bit 'L' (channels='gray') or 'RGB' (channels='rgb') image per the rules above."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.round(np.asarray(img) * 255), 0, 255).astype(np.uint8), mode="L")
    img = _drop_alpha(img)
    if channels == "gray":
        return img.convert("L")
    if channels == "rgb":
        return img.convert("RGB")
    raise ValueError(f"channels must be 'gray' or 'rgb', got {channels!r}")


CHANNEL_MODES = ("gray", "rgb", "jet")


def model_channels(data_channels: str, in_channels: int) -> str:
    """The mode a model with `in_channels` reads data of `data_channels` in: pseudo-colour (jet) data is
    inverted to its one scalar for one-channel models and read as colour by three-channel ones."""
    if in_channels == 1:
        return "jet" if data_channels == "jet" else "gray"
    return "rgb"


def load_image(path: Path | str, channels: str, size: int | None = None) -> np.ndarray:
    """Decode, convert, optionally resize (bilinear) → float32 CHW in [-1, 1]."""
    img = convert_mode(open_image(path), "rgb" if channels == "jet" else channels)
    if channels == "jet":
        from mdaug.data.colormap import invert

        img = Image.fromarray(invert(np.asarray(img)) * 255.0, mode="F")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_rows(manifest, rows: list, size: int, channels: str | None = None):
    """Manifest rows as one float tensor (N, C, size, size) in [-1, 1] and their labels."""
    import torch

    images = np.stack([load_image(manifest.file(r), channels or manifest.channels, size) for r in rows])
    return torch.from_numpy(images), torch.tensor([r.label for r in rows])


def load_split(manifest, split: str, size: int, channels: str | None = None):
    """All images of a manifest split as one float tensor (N, C, size, size) in [-1, 1] and their labels."""
    return load_rows(manifest, manifest.split(split), size, channels)
