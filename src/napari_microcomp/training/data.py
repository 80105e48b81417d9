"""Random training patches from image files, normalised exactly as the codecs normalise.

Every 2D plane (for 2D architectures) or 3D stack (for 3D ones) is mapped to [0, 1] with its own
min/max, as :mod:`napari_microcomp.codecs.learned` does per image at encode time. Arrays stay in
their native dtype in memory (uint16 is half the size of float32) and are normalised per crop.
Images are drawn with probability proportional to their size, so every pixel is equally likely; with
``power`` < 1 (size**power) small images are drawn more often, so a few large scans do not dominate.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..io import image_files, read_image


def collect_files(paths: Iterable) -> List[Path]:
    """Expand files and folders (recursively) into a sorted list of image files."""
    return image_files(paths)


@dataclass
class Item:
    name: str
    array: np.ndarray    # (Y, X) or (Z, Y, X), native dtype
    lo: float
    hi: float


def _split(name: str, a: np.ndarray, ndim: int) -> List[Tuple[str, np.ndarray]]:
    if a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] > 4:
        parts = [(f"{name}_c{c}", np.ascontiguousarray(a[..., c])) for c in range(a.shape[-1])]
        return [q for n, x in parts for q in _split(n, x, ndim)]
    if ndim == 2:
        if a.ndim == 2:
            return [(name, a)]
        if a.ndim == 3:
            return [(f"{name}_z{z}", a[z]) for z in range(a.shape[0])]
    elif a.ndim == 3:
        return [(name, a)]
    return []


def load_items(files: Sequence[Path], ndim: int = 2, skipped: Optional[List[str]] = None) -> List[Item]:
    """Read ``files`` into normalisable items: planes for ``ndim=2``, stacks for ``ndim=3``.

    With a ``skipped`` list, a file that cannot be read is noted there instead of stopping the run; a plane with
    NaN/Inf (which would poison every batch it is drawn into) is always left out, and noted."""
    items: List[Item] = []
    for f in files:
        try:
            a, _ = read_image(f)
        except InputError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
            continue
        a = np.asarray(a)
        if a.dtype.kind not in "uif":
            continue
        if a.dtype.kind == "i" or a.dtype == np.float64:
            a = a.astype(np.float32)
        for name, x in _split(Path(f).name, a, ndim):
            lo, hi = float(x.min()), float(x.max())
            if not (np.isfinite(lo) and np.isfinite(hi)):
                if skipped is not None:
                    skipped.append(f"{name}: NaN/Inf values")
                continue
            if hi > lo and min(x.shape[-2:]) >= 16:
                items.append(Item(name, x, lo, hi))
    if not items:
        why = f" ({len(skipped)} left out, first: {skipped[0]})" if skipped else ""
        raise InputError(f"no usable {ndim}D training images (non-constant, at least 16×16) in "
                         f"{len(files)} file(s){why}")
    return items


# a crop spanning less of its image's range keeps the image's stretch: stretching a nearly flat crop of
# 8-bit data would train on posterised steps no real image of that size shows
RESTRETCH_MIN_RANGE = 0.05


class PatchSampler:
    """Draw batches of random normalised crops, shape ``(B, 1, *patch)``, float32 in [0, 1].

    Crops smaller than the image are taken uniformly; images smaller than the patch are padded by
    edge replication. Random flips and 90° rotations in the (Y, X) plane augment the data. Items are
    drawn with probability proportional to ``size ** power`` (1: every pixel equally likely). With probability
    ``restretch`` a crop is mapped to [0, 1] by its own min/max instead of its image's: what the codec sees when
    it is handed that crop, so training covers the contrasts of unseen images, not only the training files' own.
    """

    def __init__(self, items: Sequence[Item], patch: Sequence[int], seed: int = 0, augment: bool = True,
                 power: float = 1.0, restretch: float = 0.0):
        self.items = list(items)
        self.patch = tuple(int(p) for p in patch)
        nd = len(self.patch)
        if any(it.array.ndim != nd for it in self.items):
            raise InputError(f"patch {self.patch} has {nd} dims but the items are not all {nd}D")
        if not 0.0 <= float(power) <= 1.0:
            raise InputError(f"sampling power must be in [0, 1], got {power}")
        if not 0.0 <= float(restretch) <= 1.0:
            raise InputError(f"restretch probability must be in [0, 1], got {restretch}")
        self.restretch = float(restretch)
        sizes = np.array([float(np.prod(it.array.shape)) for it in self.items]) ** float(power)
        self.p = sizes / sizes.sum()
        self.rng = np.random.default_rng(seed)
        self.augment = augment

    @property
    def n_pixels(self) -> int:
        return int(sum(np.prod(it.array.shape) for it in self.items))

    def _crop(self, it: Item) -> np.ndarray:
        a = it.array
        sl = []
        for dim, want in zip(a.shape, self.patch):
            start = int(self.rng.integers(0, dim - want + 1)) if dim > want else 0
            sl.append(slice(start, start + want))
        c = a[tuple(sl)]
        if c.shape != self.patch:
            c = np.pad(c, [(0, w - s) for s, w in zip(c.shape, self.patch)], mode="edge")
        x = (c.astype(np.float32) - np.float32(it.lo)) / np.float32(it.hi - it.lo)
        # rng drawn only when asked, so runs without it keep their crop sequence
        if self.restretch and self.rng.random() < self.restretch:
            lo, hi = float(x.min()), float(x.max())
            if hi - lo >= RESTRETCH_MIN_RANGE:
                x = (x - np.float32(lo)) / np.float32(hi - lo)
        if self.augment:
            if self.rng.random() < 0.5:
                x = x[..., ::-1]
            if self.rng.random() < 0.5:
                x = x[..., ::-1, :]
            if self.patch[-1] == self.patch[-2]:
                x = np.rot90(x, int(self.rng.integers(0, 4)), axes=(-2, -1))
        return x

    def batch(self, n: int) -> np.ndarray:
        idx = self.rng.choice(len(self.items), size=n, p=self.p)
        b = np.stack([self._crop(self.items[i]) for i in idx])
        # reshape, not [:, None]: that view has a 0 stride on the channel axis, which torch keeps and which
        # oneDNN's bf16 channels-last 3D kernels mishandled (gradients of 1e37)
        return b.reshape(b.shape[0], 1, *b.shape[1:])
