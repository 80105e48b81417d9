"""Label-free training data: paired images read, (optionally) compressed and normalized, then random
aligned crops with dihedral augmentation cut on the training device (the trainer's sampling hook)."""
import hashlib
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from ..errors import InputError
from ..io import read_image
from .normalize import normalize, percentile_scheme


# -- data -----------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_codec_spec(spec: str):
    """``"jpegxr:4"`` -> a configured codec from the registry (quality 1..8)."""
    from ..codecs import get_codec

    name, _, q = spec.partition(":")
    if not name:
        raise InputError(f"--compress-with needs CODEC:QUALITY, got {spec!r}")
    try:
        quality = int(q) if q else None
    except ValueError:
        raise InputError(f"--compress-with quality must be an integer 1..8, got {q!r}") from None
    return get_codec(name, quality=quality)


def load_pairs(cfg) -> Tuple[List[np.ndarray], List[np.ndarray], Dict[str, Any]]:
    """Read, (optionally) compress and normalize the paired images: ``(C, Y, X)`` and ``(1, Y, X)``."""
    if not cfg.inputs or len(cfg.inputs) != len(cfg.targets):
        raise InputError(f"need as many --targets as --inputs, got {len(cfg.inputs)} and {len(cfg.targets)}")
    codec = parse_codec_spec(cfg.compress_with) if cfg.compress_with else None
    scheme = percentile_scheme(cfg.norm_low, cfg.norm_high)
    xs, ys, files, comp = [], [], [], []
    n_slices = None
    for xin, yin in zip(cfg.inputs, cfg.targets):
        x, _ = read_image(xin)
        y, _ = read_image(yin)
        if y.ndim != 2:
            raise InputError(f"target {Path(yin).name} must be 2D (Y, X), got shape {y.shape}")
        if cfg.zstack:
            if x.ndim != 3:
                raise InputError(f"--zstack needs (Z, Y, X) inputs; {Path(xin).name} has shape {x.shape}")
            if n_slices is not None and x.shape[0] != n_slices:
                raise InputError(f"all input stacks need the same slice count ({n_slices}), "
                                 f"{Path(xin).name} has {x.shape[0]}")
            n_slices = x.shape[0]
        elif x.ndim != 2:
            raise InputError(f"input {Path(xin).name} has shape {x.shape}: pass 2D images, or --zstack for stacks")
        if x.shape[-2:] != y.shape:
            raise InputError(f"{Path(xin).name} {x.shape[-2:]} and {Path(yin).name} {y.shape} are not the same size")
        if min(y.shape) < cfg.crop:
            raise InputError(f"--crop {cfg.crop} is larger than {Path(yin).name} {y.shape}")
        if codec is not None:
            stream = codec.encode(x)
            x = codec.decode(stream)
            comp.append({"file": Path(xin).name, "bytes": len(stream),
                         "ratio": float(x.nbytes) / len(stream)})
        xn = normalize(x, scheme)
        xs.append(xn if xn.ndim == 3 else xn[None])
        ys.append(normalize(y, scheme)[None])
        files += [{"role": role, "path": str(p), "name": Path(p).name, "sha256": _sha256(Path(p)),
                   "shape": list(a.shape)} for role, p, a in (("input", xin, x), ("target", yin, y))]
    info = {"files": files, "n_slices": int(n_slices or 1), "normalization": scheme,
            "compress_with": None if codec is None else {"codec": codec.get_config(), "streams": comp}}
    return xs, ys, info


def _heldin_window(shape: Tuple[int, int], crop: int, multiple: int) -> Tuple[slice, slice]:
    """A fixed central window of the first training pair for the quick Pearson check (held-in)."""
    size = [max(multiple, (min(n, 2 * crop) // multiple) * multiple) for n in shape]
    starts = [(n - s) // 2 for n, s in zip(shape, size)]
    return tuple(slice(a, a + s) for a, s in zip(starts, size))


class _Sampler:
    """Random aligned crops + dihedral augmentation, cut on the device from whole images."""

    def __init__(self, xs, ys, crop: int, batch: int, device, seed: int):
        import torch

        self.xs = [torch.from_numpy(x).to(device) for x in xs]
        self.ys = [torch.from_numpy(y).to(device) for y in ys]
        areas = np.array([y.shape[-1] * y.shape[-2] for y in ys], dtype=np.float64)
        self.p = areas / areas.sum()
        self.crop, self.batch = crop, batch
        self.rng = np.random.default_rng(seed)

    def __call__(self):
        import torch

        c = self.crop
        bx, by = [], []
        for _ in range(self.batch):
            i = int(self.rng.choice(len(self.xs), p=self.p))
            h, w = self.ys[i].shape[-2:]
            r0, c0 = int(self.rng.integers(0, h - c + 1)), int(self.rng.integers(0, w - c + 1))
            k, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
            pair = [t[:, r0:r0 + c, c0:c0 + c] for t in (self.xs[i], self.ys[i])]
            pair = [torch.rot90(t, k, dims=(1, 2)) for t in pair]
            if flip:
                pair = [torch.flip(t, dims=(2,)) for t in pair]
            bx.append(pair[0])
            by.append(pair[1])
        return torch.stack(bx), torch.stack(by)
