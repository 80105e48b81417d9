"""Tiled inference for any image or stack size: overlapping tiles, smooth blending, batches of tiles.

Pure numpy: the network is a callable ``fn(batch) -> batch`` on arrays shaped
``(B, C, *tile)``, so the same code serves 2D and 3D nets and is testable without torch.

Each tile is weighted by a separable window that is 1 inside, falls as sin² over the overlap
on sides that have a neighbour, and is exactly 0 in the outermost quarter of the overlap
(where a convolutional net sees padding instead of image). Where two tiles' ramps align the
weights sum to 1 (sin² + cos²), so there are no seams; the sum is normalized anyway.
"""
import itertools
from typing import Callable, Generator, List, Sequence, Tuple, Union

import numpy as np

from .._progress import Progress, checkpoint
from ..errors import InputError

TileFn = Callable[[np.ndarray], np.ndarray]


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
