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


def _aux_groups(cfg) -> List[List[str]]:
    """The auxiliary targets of each input: ``--aux-targets`` holds K files per input, in input order."""
    aux, n = list(cfg.aux_targets), len(cfg.inputs)
    w = cfg.aux_weight
    if not (isinstance(w, (int, float)) and np.isfinite(w) and w >= 0):
        raise InputError(f"--aux-weight must be a finite number >= 0, got {w!r}")
    if aux and len(aux) % n:
        raise InputError(f"--aux-targets needs the same number of files for each of the {n} input(s), "
                         f"got {len(aux)}")
    k = len(aux) // n
    return [aux[i * k:(i + 1) * k] for i in range(n)]


def one_head(state: Dict[str, Any], arch: Dict[str, Any], channel: int = 0) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The generator with one output: ``channel`` of the head (0: the main target, k: auxiliary target k)."""
    if arch.get("out_channels", 1) == 1:
        return state, arch
    state = dict(state)
    for k in ("head.weight", "head.bias"):
        if k in state:
            state[k] = state[k][channel:channel + 1]
    return state, dict(arch, out_channels=1)


def load_pairs(cfg) -> Tuple[List[np.ndarray], List[np.ndarray], Dict[str, Any]]:
    """Read, (optionally) compress and normalize the paired images: ``(C, Y, X)`` inputs and ``(1 + K, Y, X)``
    targets (the main target, then K auxiliary ones that only shape the training)."""
    if not cfg.inputs or len(cfg.inputs) != len(cfg.targets):
        raise InputError(f"need as many --targets as --inputs, got {len(cfg.inputs)} and {len(cfg.targets)}")
    aux_groups = _aux_groups(cfg)
    codec = parse_codec_spec(cfg.compress_with) if cfg.compress_with else None
    scheme = percentile_scheme(cfg.norm_low, cfg.norm_high)
    xs, ys, files, comp = [], [], [], []
    n_slices = None
    for xin, yin, auxin in zip(cfg.inputs, cfg.targets, aux_groups):
        x, _ = read_image(xin)
        y, _ = read_image(yin)
        aux = [read_image(a)[0] for a in auxin]
        for name, t in [(yin, y)] + list(zip(auxin, aux)):
            if t.ndim != 2 or t.shape != y.shape:
                raise InputError(f"target {Path(name).name} must be 2D (Y, X) and the size of the main target "
                                 f"{y.shape}, got shape {t.shape}")
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
        ys.append(np.stack([normalize(t, scheme) for t in [y] + aux]))
        roles = [("input", xin, x), ("target", yin, y)] + [("aux-target", p, a) for p, a in zip(auxin, aux)]
        files += [{"role": role, "path": str(p), "name": Path(p).name, "sha256": _sha256(Path(p)),
                   "shape": list(a.shape)} for role, p, a in roles]
    info = {"files": files, "n_slices": int(n_slices or 1), "normalization": scheme,
            "compress_with": None if codec is None else {"codec": codec.get_config(), "streams": comp}}
    return xs, ys, info


def _heldin_window(shape: Tuple[int, int], crop: int, multiple: int) -> Tuple[slice, slice]:
    """A fixed central window of the first training pair for the quick Pearson check (held-in)."""
    size = [max(multiple, (min(n, 2 * crop) // multiple) * multiple) for n in shape]
    starts = [(n - s) // 2 for n, s in zip(shape, size)]
    return tuple(slice(a, a + s) for a, s in zip(starts, size))


def split_validation(xs, ys, frac: float, multiple: int, crop: int):
    """Hold out the right-most ``frac`` of every pair's width (a multiple of ``multiple``) for validation:
    ``(train_xs, train_ys, val_xs, val_ys)``. The strips are never sampled for training, so early stopping
    and the best-checkpoint choice see images the net did not fit (and not the evaluation region, which
    the caller keeps out of the training files)."""
    if not frac:
        return xs, ys, [], []
    if not 0 < frac < 0.5:
        raise InputError(f"--val-frac must be between 0 and 0.5, got {frac}")
    txs, tys, vxs, vys = [], [], [], []
    for x, y in zip(xs, ys):
        w = y.shape[-1]
        v = max(multiple, int(w * frac) // multiple * multiple)
        if w - v < crop:
            raise InputError(f"after holding out a {v}-pixel validation strip, a {w}-pixel-wide image is "
                             f"narrower than --crop {crop}; lower --val-frac or --crop")
        txs.append(np.ascontiguousarray(x[..., :w - v]))
        tys.append(np.ascontiguousarray(y[..., :w - v]))
        vxs.append(np.ascontiguousarray(x[..., w - v:]))
        vys.append(np.ascontiguousarray(y[..., w - v:]))
    return txs, tys, vxs, vys


class Validation:
    """Pearson r on the held-out strips, the best generator state seen, and patience for early stopping."""

    def __init__(self, vxs, vys, device, patience: int = 0):
        import torch

        self.x = [torch.from_numpy(v).to(device)[None] for v in vxs]
        self.y = [torch.from_numpy(v).to(device)[None] for v in vys]
        self.patience = int(patience)
        self.best_r, self.best_step, self.best_state, self.since_best = -float("inf"), None, None, 0

    def __bool__(self) -> bool:
        return bool(self.x)

    def evaluate(self, G, autocast, pearson) -> float:
        import torch

        multiple = G.multiple
        G.eval()
        rs = []
        with torch.inference_mode(), autocast():
            for x, y in zip(self.x, self.y):
                h = y.shape[-2] // multiple * multiple   # the strip's width already is a multiple
                rs.append(pearson(G(x[..., :h, :])[:, :1].float(), y[:, :1, :h, :]))
        G.train()
        return float(np.mean(rs))

    def update(self, r: float, step: int, G) -> bool:
        """Record ``r`` at ``step``; True when patience has run out (stop early)."""
        if r > self.best_r:
            self.best_r, self.best_step, self.since_best = r, step, 0
            self.best_state = {k: v.detach().clone() for k, v in G.state_dict().items()}
        else:
            self.since_best += 1
        return bool(self.patience) and self.since_best >= self.patience


AUGMENTATIONS = ("basic", "strong")


class _Sampler:
    """Random aligned crops + dihedral augmentation, cut on the device from whole images.

    ``augment="strong"`` adds, per crop: a scale change of up to ±20 % (a larger or smaller source
    window resized to the crop), an input gain of ×0.8–1.25 and offset of ±0.1 (normalized units:
    another exposure or lamp), and Gaussian noise of σ ≤ 0.03 on the input. The target keeps its
    intensities (it is what the net must predict)."""

    def __init__(self, xs, ys, crop: int, batch: int, device, seed: int, augment: str = "basic"):
        import torch

        if augment not in AUGMENTATIONS:
            raise InputError(f"--augment must be one of {', '.join(AUGMENTATIONS)}, got {augment!r}")
        self.xs = [torch.from_numpy(x).to(device) for x in xs]
        self.ys = [torch.from_numpy(y).to(device) for y in ys]
        areas = np.array([y.shape[-1] * y.shape[-2] for y in ys], dtype=np.float64)
        self.p = areas / areas.sum()
        self.crop, self.batch, self.strong = crop, batch, augment == "strong"
        self.rng = np.random.default_rng(seed)

    def _one(self):
        import torch
        import torch.nn.functional as F

        c, rng = self.crop, self.rng
        i = int(rng.choice(len(self.xs), p=self.p))
        h, w = self.ys[i].shape[-2:]
        s = min(h, w, int(round(c * float(np.exp(rng.uniform(-0.2, 0.2)))))) if self.strong else c
        r0, c0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        pair = [t[:, r0:r0 + s, c0:c0 + s] for t in (self.xs[i], self.ys[i])]
        if s != c:
            pair = [F.interpolate(t[None], size=(c, c), mode="bilinear", align_corners=False)[0] for t in pair]
        pair = [torch.rot90(t, k, dims=(1, 2)) for t in pair]
        if flip:
            pair = [torch.flip(t, dims=(2,)) for t in pair]
        x = pair[0]
        if self.strong:
            gain, offset = float(np.exp(rng.uniform(-0.22, 0.22))), float(rng.uniform(-0.1, 0.1))
            noise = float(rng.uniform(0.0, 0.03))
            x = x * gain + offset + noise * torch.randn_like(x)
        return x, pair[1]

    def __call__(self):
        import torch

        out = [self._one() for _ in range(self.batch)]
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])
