"""Tiles: the one tiler of the project (geometry, halos, blending; no codec knowledge).

Three uses, one module:

* **Halo and crop** (:func:`tile_grid`): near-equal *cores* of at most ``tile`` per axis, each with a
  *halo* (clipped at the border). The tiling wrapper codec and the 3D learned codec encode ``outer`` and
  keep ``core``; :func:`seam_error_ratio` measures what is left of the seams.
* **A fixed grid** (:func:`fixed_grid`): cuts at multiples of ``tile``; the 2D learned codecs record
  their tile size in each stream and decode with exactly this grid.
* **Blending** (:func:`plan_tiles`, :func:`iter_tiled`): overlapping tiles of a network's output
  weighted by a separable window, for label-free inference. Each tile's window is 1 inside, falls as
  sin² over the overlap on sides that have a neighbour and is exactly 0 in the outermost quarter of the
  overlap (where a convolutional net sees padding instead of image); where two ramps meet the weights sum
  to 1 (sin² + cos²), so there are no seams; the sum is normalised anyway.
"""
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Generator, List, Sequence, Tuple, Union

import numpy as np

from ._progress import Progress, checkpoint
from .errors import CodecError, InputError

Box = Tuple[Tuple[int, int], ...]
TileFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tile:
    """One tile: ``outer`` is what is encoded, ``core`` what is kept (both absolute ``(start, stop)``)."""

    core: Box
    outer: Box

    def slices(self, which: str = "outer") -> Tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in getattr(self, which))

    def core_in_outer(self) -> Tuple[slice, ...]:
        return tuple(slice(c0 - o0, c1 - o0) for (c0, c1), (o0, _) in zip(self.core, self.outer))


def _splits(size: int, tile: int) -> List[Tuple[int, int]]:
    # Near-equal pieces: no thin remainder tile that a codec would refuse (< 8 px) or code badly.
    n = max(1, math.ceil(size / max(1, tile)))
    edges = [round(i * size / n) for i in range(n + 1)]
    return [(edges[i], edges[i + 1]) for i in range(n)]


def as_axes(v: Union[int, Sequence[int], None], ndim: int, name: str) -> Tuple[int, ...]:
    if v is None:
        raise CodecError(f"{name} is required")
    t = (int(v),) * ndim if np.isscalar(v) else tuple(int(x) for x in v)
    if len(t) == 1:   # one value for every axis, as for a scalar (the CLI's ``--tile 512``)
        t = t * ndim
    if len(t) != ndim or any(x < 0 for x in t):
        raise CodecError(f"{name} must be {ndim} non-negative integers, got {v!r}")
    return t


def grid_edges(shape: Sequence[int], tile: Union[int, Sequence[int]]) -> List[List[int]]:
    """Per-axis cut positions ``[0, ..., size]`` giving near-equal cores of at most ``tile``."""
    shape = tuple(int(s) for s in shape)
    tile_t = as_axes(tile, len(shape), "tile")
    if any(t < 1 for t in tile_t):
        raise CodecError(f"tile sizes must be ≥ 1, got {tile_t}")
    return [[a for a, _ in _splits(s, t)] + [s] for s, t in zip(shape, tile_t)]


def tiles_from_edges(shape: Sequence[int], edges: Sequence[Sequence[int]],
                     halo: Union[int, Sequence[int]] = 0) -> List[Tile]:
    """The tiles (C order: first axis slowest) of a grid given by per-axis ``edges``, with halos."""
    shape = tuple(int(s) for s in shape)
    halo_t = as_axes(halo, len(shape), "halo")
    axes = [list(zip(e[:-1], e[1:])) for e in edges]
    out = []
    for idx in np.ndindex(*[len(a) for a in axes]):
        core = tuple((int(axes[d][i][0]), int(axes[d][i][1])) for d, i in enumerate(idx))
        outer = tuple((max(0, a - h), min(s, b + h)) for (a, b), h, s in zip(core, halo_t, shape))
        out.append(Tile(core, outer))
    return out


def tile_grid(shape: Sequence[int], tile: Union[int, Sequence[int]],
              halo: Union[int, Sequence[int]] = 0) -> List[Tile]:
    """Cut ``shape`` into near-equal cores of at most ``tile`` voxels per axis, each with its halo.

    Tiles are in C order (first axis slowest), so a z-slab of tiles is finished before the next.
    """
    return tiles_from_edges(shape, grid_edges(shape, tile), halo)


def fixed_grid(h: int, w: int, tile: int) -> List[Tuple[int, int, int, int]]:
    """``(y0, y1, x0, x1)`` boxes of a grid cut at multiples of ``tile`` (row-major; the last ones smaller)."""
    return [(y, min(y + tile, h), x, min(x + tile, w)) for y in range(0, h, tile) for x in range(0, w, tile)]


def seam_error_ratio(original, reconstruction, tiles: List[Tile], width: int = 2) -> float:
    """MSE within ``width`` voxels of an internal tile seam divided by the MSE elsewhere.

    The quantity the seam bound of the module docstring is about (1.0 = seams invisible in MSE).
    """
    x = np.asarray(original, dtype=np.float64)
    err = (x - np.asarray(reconstruction, dtype=np.float64)) ** 2
    near = np.zeros(x.shape, dtype=bool)
    for t in tiles:
        for d, ((c0, c1), s) in enumerate(zip(t.core, x.shape)):
            for edge in (c0, c1):
                if 0 < edge < s:
                    sl = [slice(a, b) for a, b in t.core]
                    sl[d] = slice(max(0, edge - width), min(s, edge + width))
                    near[tuple(sl)] = True
    if not near.any() or near.all():
        return 1.0
    inner = err[~near].mean()
    seam = err[near].mean()
    if inner == 0:
        return 1.0 if seam == 0 else float("inf")
    return float(seam / inner)


# -- blending (label-free inference) ---------------------------------------------------------------
def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _positions(length: int, tile: int, overlap: int) -> List[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    return list(range(0, length - tile, step)) + [length - tile]


def _ramp(overlap: int) -> np.ndarray:
    margin = overlap // 4
    i = np.arange(overlap, dtype=np.float64)
    r = np.clip((i + 0.5 - margin) / max(overlap - 2 * margin, 1), 0.0, 1.0)
    return np.sin(0.5 * np.pi * r) ** 2


def _window_1d(pos: int, tile: int, length: int, overlap: int) -> np.ndarray:
    w = np.ones(tile, dtype=np.float64)
    if overlap <= 0:
        return w
    ramp = _ramp(overlap)
    if pos > 0:
        w[:overlap] = ramp
    if pos + tile < length:
        w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def plan_tiles(shape: Sequence[int], tile: Union[int, Sequence[int]], overlap: Union[int, Sequence[int]],
               multiple: int = 16) -> Tuple[Tuple[int, ...], Tuple[int, ...], List[Tuple[int, ...]]]:
    """Return ``(padded_shape, tile_shape, positions)`` for spatial ``shape``.

    Tiles are multiples of ``multiple``; an axis shorter than its tile is padded up to one tile.
    """
    nd = len(shape)
    tiles = [tile] * nd if np.isscalar(tile) else list(tile)
    overlaps = [overlap] * nd if np.isscalar(overlap) else list(overlap)
    if len(tiles) != nd or len(overlaps) != nd:
        raise InputError(f"tile/overlap need {nd} values for a {nd}D image")
    t_out, padded, pos_axes = [], [], []
    for n, t, o in zip(shape, tiles, overlaps):
        t = _round_up(max(int(t), multiple), multiple)
        t = min(t, _round_up(n, multiple))
        o = max(0, min(int(o), t // 2))
        padded.append(max(n, t))
        t_out.append(t)
        pos_axes.append(_positions(max(n, t), t, o))
    return tuple(padded), tuple(t_out), list(itertools.product(*pos_axes))


def iter_tiled(fn: TileFn, x: np.ndarray, tile: Union[int, Sequence[int]] = 512,
               overlap: Union[int, Sequence[int]] = 64, batch: int = 4, multiple: int = 16,
               stage: str = "predict") -> Generator[Progress, None, np.ndarray]:
    """Apply ``fn`` to ``x`` of shape ``(C, *spatial)`` tile by tile; return ``(C_out, *spatial)`` float32.

    Yields one :class:`Progress` per batch of tiles.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 3:
        raise InputError(f"iter_tiled needs (C, *spatial), got shape {x.shape}")
    spatial = x.shape[1:]
    if np.isscalar(overlap):
        overlap = [overlap] * len(spatial)
    padded, tshape, positions = plan_tiles(spatial, tile, overlap, multiple)
    pad = [(0, 0)] + [(0, p - n) for p, n in zip(padded, spatial)]
    if any(after for _, after in pad):
        # Reflection continues structure, so the net sees no artificial edge inside the image.
        x = np.pad(x, pad, mode="reflect" if all(n > 1 for n in spatial) else "edge")
    ovl = [max(0, min(int(o), t // 2)) for o, t in zip(overlap, tshape)]
    out = None
    wsum = np.zeros(padded, dtype=np.float32)
    total = len(positions)
    batch = max(1, int(batch))
    yield Progress(stage, 0, total, f"{total} tile(s) of {tshape}")
    for start in range(0, total, batch):
        checkpoint(stage, start, total, f"tiles {start + 1}–{min(start + batch, total)} of {total}")
        group = positions[start:start + batch]
        slices = [tuple(slice(p, p + t) for p, t in zip(pos, tshape)) for pos in group]
        tiles = np.stack([x[(slice(None),) + s] for s in slices])
        pred = np.asarray(fn(tiles), dtype=np.float32)
        if pred.shape[0] != len(group) or pred.shape[2:] != tshape:
            raise InputError(f"tile function returned {pred.shape}, expected ({len(group)}, C, {tshape})")
        if out is None:
            out = np.zeros((pred.shape[1],) + tuple(padded), dtype=np.float32)
        for pos, s, p in zip(group, slices, pred):
            w = _window_1d(pos[0], tshape[0], padded[0], ovl[0])
            for ax in range(1, len(tshape)):
                w = np.multiply.outer(w, _window_1d(pos[ax], tshape[ax], padded[ax], ovl[ax]))
            w = w.astype(np.float32)
            out[(slice(None),) + s] += p * w
            wsum[s] += w
        yield Progress(stage, min(start + batch, total), total)
    crop = (slice(None),) + tuple(slice(0, n) for n in spatial)
    return (out / np.maximum(wsum, 1e-12))[crop]
