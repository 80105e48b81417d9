"""Learned volumetric codecs: a whole z-stack through a Conv3d model (:mod:`..models.arch3d`).

Intensities (as the 2D learned codecs): the volume is mapped to [0, 1] with its own min/max
(``header.norm``, mode ``minmax``), the model's output mapped back in float64, rounded for integer
types and clipped to the original range.

Exactness (as the 2D learned codecs): convolutions run with a fixed torch thread count recorded in
the stream (``threads``), the encoder decodes its own stream and records the CRC32 of that
reconstruction in ``header.check``, and the base class refuses any decode that does not reproduce
it; the weights' fingerprint (``weights_id``) is recorded too. A stream decodes bit-exactly or
raises StreamError, never decodes wrongly.

Memory: volumes larger than ``block`` are coded as independent blocks with a halo
(:func:`napari_microcomp.tiling.tile_grid`; same seam strategy as tiled streams), so the model's
activations stay bounded; for volumes larger than RAM use :mod:`napari_microcomp.tiled`.
"""
from typing import TYPE_CHECKING, Any, ClassVar, List, Optional, Sequence, Tuple

import numpy as np

from .. import container, outliers, slice_ranges
from .._progress import checkpoint
from ..errors import CodecError, StreamError
from ..modality import MODALITIES
from ..models.registry import LAMBDAS_MSE
from ..weights.load import LoadedModel, encodable
from .base import Codec
from .latent_grid import GRID, GRIDS, OLD_GRID, on_grid
from .weight_levels import MAX_THREADS, WeightLevels, default_threads
from .registry import register_codec

if TYPE_CHECKING:  # torch is imported when a model runs
    import torch


class VolumetricCodec(WeightLevels, Codec):
    """Base of the learned 3D codecs; subclasses set ``codec_id`` and ``arch``.

    Parameters (besides ``quality`` 1..8): ``weights`` (``"auto"``/None: the weights for the volume's
    modality, detected as for 2D images and recorded in the stream, else the general ones;
    ``"transmitted"``, ``"fluorescence"`` or a path), ``threads`` (recorded in the stream); ``ep`` as for the
    2D learned codecs; ``grid`` (recorded): Y/X padded to 16 (``mbt2018-mean-vbr3d``; streams without it: 64).
    """

    family = "volumetric"
    native_3d = True
    arch: ClassVar[str] = ""
    quality_table = {q: lam for q, lam in enumerate(LAMBDAS_MSE, start=1)}
    # Blocks coded at once (Z, Y, X) and their halo: ~4 M voxels, ~0.5 GB of activations (N=64). A volume of
    # at most that many voxels is coded as one block, whatever its shape.
    block: ClassVar[Tuple[int, int, int]] = (64, 256, 256)
    block_halo: ClassVar[Tuple[int, int, int]] = (2, 8, 8)
    # Preferred tile and halo when wrapped by napari_microcomp.tiled: half the block, so that with
    # torch + compressai loaded (~0.85 GB RSS) a tile pass stays well inside 1.5 GB.
    tile_shape: ClassVar[Tuple[int, int, int]] = (32, 256, 256)
    tile_halo: ClassVar[Tuple[int, int, int]] = (2, 8, 8)
    latent_grid: ClassVar[bool] = False   # whether blocks may be padded to 16 in Y/X (hyperprior-stacked models)

    @classmethod
    def extra_params(cls) -> Sequence[str]:
        return ("weights", "threads", "weights_id", "ep", "grid")

    def __init__(self, quality: Optional[int] = None, lossless: bool = False, **native: Any):
        super().__init__(quality=quality, lossless=lossless, **native)
        if self.quality is None:
            raise CodecError(f"{self.codec_id} needs a quality 1..8")
        threads = self.params.get("threads")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or not 1 <= threads <= MAX_THREADS):
            raise CodecError(f"{self.codec_id}: threads must be an integer 1..{MAX_THREADS}, got {threads!r}")
        self._check_ep()
        grid = self.params.get("grid")
        if grid is not None and (isinstance(grid, bool) or grid not in (GRIDS if self.latent_grid else (OLD_GRID,))):
            raise CodecError(f"{self.codec_id}: grid (block padding multiple in Y/X) must be one of "
                             f"{GRIDS if self.latent_grid else (OLD_GRID,)}, got {grid!r}")

    def _multiple(self, model) -> Tuple[int, int, int]:
        """Padding multiple per axis: Y/X to 16 where the stream says so (:mod:`.latent_grid`)."""
        f = tuple(model.downsampling_factor)
        return (f[0], GRID, GRID) if int(self.params.get("grid") or OLD_GRID) == GRID else f

    @staticmethod
    def _on_grid(model, zyx: Sequence[int]):
        return on_grid(model, (int(zyx[1]) // 16, int(zyx[2]) // 16))

    def _model(self, want: Optional[str] = None, weights: Any = None) -> "LoadedModel":
        """The weights to code with (``weights``, else this codec's); ``want``: the fingerprint a stream
        names (found among retired files too)."""
        from ..models.coding import channels_last_by_rank

        lm = self._named_model(want, weights)
        if not getattr(lm.model, "_channels_last_3d", False):
            # Part of the stream format (it changes float reductions): on CPU, channels-last 3D
            # convolutions run ~2x faster with less peak memory than the default layout.
            channels_last_by_rank(lm.model)
            lm.model._channels_last_3d = True
        return lm

    @staticmethod
    def _check_block(model, mult: Sequence[int], shape: Sequence[int], core: Sequence[Tuple[int, int]],
                     outer: Sequence[Tuple[int, int]], latent: List[int], n: int) -> None:
        """Refuse a block that does not fit the volume, or whose declared latent does not fit the block,
        before any native decoder runs (a latent larger than its block made rANS read out of bounds)."""
        if not (len(core) == len(outer) == len(shape) == 3 and all(
                0 <= o0 <= c0 < c1 <= o1 <= s for (c0, c1), (o0, o1), s in zip(core, outer, shape))):
            raise StreamError(f"damaged stream: block {core} in {outer} does not fit the volume {list(shape)}")
        if int(np.prod([o1 - o0 for o0, o1 in outer])) > 2 * int(np.prod(VolumetricCodec.block)):
            # the encoder never writes a block above ``block`` voxels; a crafted one would fill the memory
            raise StreamError(f"damaged stream: block {outer} is larger than any this codec writes")
        zyx = [-(-(o1 - o0) // f) * f for (o0, o1), f in zip(outer, mult)]
        want = model.latent_shape(zyx)
        n_want = 2 if hasattr(model, "h_a") else 1
        if [int(v) for v in latent] != list(want) or n != n_want:
            raise StreamError(f"damaged stream: a block of {zyx} declares latent {latent} in {n} strings "
                              f"(expected {want} in {n_want})")

    # -- encode --------------------------------------------------------------------------
    def _encode(self, a: np.ndarray, header: container.Header) -> List[bytes]:
        import torch

        from ..models.arch3d import pad_multiple
        from ..models.coding import exact_hyper, fixed_threads, symbol_tally

        weights = self._resolve_weights(a)
        lm = encodable(self._model(weights=weights), self.codec_id)
        if isinstance(weights, str) and weights in MODALITIES:
            header.codec["weights"] = weights
        threads = int(self.params.get("threads") or default_threads())
        header.codec["threads"] = threads
        header.codec["weights_id"] = lm.weights_id
        if hasattr(lm.model, "h_s"):
            self.params["ep"] = header.codec["ep"] = self.params.get("ep") or 64
        if self.latent_grid:
            self.params["grid"] = header.codec["grid"] = self.params.get("grid") or GRID
        mult = self._multiple(lm.model)
        vol = a if a.ndim == 3 else a[None]
        r = slice_ranges.split(vol)   # a blank, saturated or flash slice keeps its own range
        header.layout = "volume"
        header.norm = slice_ranges.record({"mode": "minmax", "lo": r.lo, "hi": r.hi}, slice_ranges.aligned(r))
        lo, hi = _z_bounds(slice_ranges.bounds_per_slice(header.norm, len(vol), self.codec_id))
        tiles = self._blocks(vol.shape)
        recon = np.empty(vol.shape, dtype=a.dtype)
        payloads: List[bytes] = []
        blocks = []
        tally = symbol_tally()
        with fixed_threads(threads), torch.inference_mode():
            for k, t in enumerate(tiles):
                checkpoint("encode", k, len(tiles), f"{self.codec_id}: block {k + 1}/{len(tiles)}")
                z0, z1 = t.outer[0]
                x = _to_unit(vol[t.slices("outer")], lo[z0:z1], hi[z0:z1])
                xp, zyx = pad_multiple(x, mult)
                model = self._on_grid(lm.model, xp.shape[-3:])
                with exact_hyper(lm.model, self._ep() == 64):
                    enc = model.compress(xp, **self._kwargs())
                strings = [s[0] for s in enc["strings"]]
                latent = [int(v) for v in enc["shape"]]
                with tally, exact_hyper(lm.model, self._ep() == 64):
                    y = model.decompress([[s] for s in strings], latent, **self._kwargs())["x_hat"]
                recon[t.slices("core")] = _from_unit(y, zyx, lo[z0:z1], hi[z0:z1], a.dtype)[t.core_in_outer()]
                payloads.extend(strings)
                blocks.append({"core": [list(c) for c in t.core], "outer": [list(o) for o in t.outer],
                               "latent": latent, "n": len(strings)})
        header.meta["blocks"] = blocks
        header.check = {"crc32": container.array_crc32(outliers.with_current(recon if a.ndim == 3 else recon[0]))}
        if tally.value is not None:
            header.check["symbols"] = container.symbols_check(header, tally.value)
        return payloads

    def _blocks(self, shape: Sequence[int]) -> list:
        """The coding blocks: the whole volume if it has no more voxels than a block; else cores cut at
        multiples of ``block - 2*halo``, so an interior block with its halo is exactly ``block`` (a multiple of
        the model's padding) and codes no padding. Near-equal cores padded up to the multiple cost +50 % rate
        (13×512×1024, mbt2018-mean-vbr3d q4 with a (2, 8, 8) halo: 1.07 bpv against 0.71 for one block, same
        PSNR; aligned cores: 0.89)."""
        from ..tiling import tiles_from_edges

        if int(np.prod(shape)) <= int(np.prod(self.block)):
            return tiles_from_edges(shape, [[0, int(s)] for s in shape], self.block_halo)
        cores = [max(1, b - 2 * h) for b, h in zip(self.block, self.block_halo)]
        edges = [list(range(0, int(s), c)) + [int(s)] for s, c in zip(shape, cores)]
        return tiles_from_edges(shape, edges, self.block_halo)

    # -- decode --------------------------------------------------------------------------
    def _decode(self, header: container.Header, payloads: List[bytes]) -> np.ndarray:
        if header.layout != "volume":
            raise StreamError(f"{self.codec_id}: unexpected layout {header.layout!r}")
        if header.norm.get("mode") != "minmax":
            raise StreamError(f"{self.codec_id}: unknown intensity mapping {header.norm.get('mode')!r}")
        import torch

        from ..models.coding import exact_hyper, fixed_threads, symbol_tally

        # the stream, not this instance, says how it was coded (codec.decode(data) on any instance works)
        lm = self._model(header.codec.get("weights_id"))
        try:
            threads = int(header.codec["threads"])
            blocks = list(header.meta["blocks"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StreamError(f"{self.codec_id}: header lacks normalisation/blocks ({exc})") from exc
        if not 1 <= threads <= MAX_THREADS:   # a hostile 65536 made libgomp abort the process
            raise StreamError(f"{self.codec_id}: the stream asks for {threads} threads (at most {MAX_THREADS})")
        shape = tuple(header.shape) if len(header.shape) == 3 else (1, *header.shape)
        lo, hi = _z_bounds(slice_ranges.bounds_per_slice(header.norm, shape[0], self.codec_id))
        dtype = np.dtype(header.dtype)
        if sum(int(b["n"]) for b in blocks) != len(payloads):
            raise StreamError(f"{self.codec_id}: {len(payloads)} payloads for {len(blocks)} blocks")
        out = np.empty(shape, dtype=dtype)
        mult = self._multiple(lm.model)
        i = 0
        tally = symbol_tally()
        with fixed_threads(threads), torch.inference_mode():
            for k, b in enumerate(blocks):
                checkpoint("decode", k, len(blocks), f"{self.codec_id}: block {k + 1}/{len(blocks)}")
                core = [tuple(map(int, c)) for c in b["core"]]
                outer = [tuple(map(int, o)) for o in b["outer"]]
                n = int(b["n"])
                strings = [[p] for p in payloads[i:i + n]]
                i += n
                latent = [int(v) for v in b["latent"]]
                self._check_block(lm.model, mult, shape, core, outer, latent, n)
                model = self._on_grid(lm.model, [-(-(o1 - o0) // f) * f for (o0, o1), f in zip(outer, mult)])
                try:
                    with tally, exact_hyper(lm.model, self._ep() == 64):
                        y = model.decompress(strings, latent, **self._kwargs())["x_hat"]
                except ValueError as exc:   # e.g. a damaged slice table (models/stacked3d.py)
                    raise StreamError(f"{self.codec_id}: damaged stream ({exc})") from None
                zyx = tuple(o1 - o0 for o0, o1 in outer)
                block = _from_unit(y, zyx, lo[outer[0][0]:outer[0][1]], hi[outer[0][0]:outer[0][1]], dtype)
                out[tuple(slice(c0, c1) for c0, c1 in core)] = block[
                    tuple(slice(c0 - o0, c1 - o0) for (c0, c1), (o0, _) in zip(core, outer))]
        self.decoded_symbols = container.symbols_check(header, tally.value)
        return out if len(header.shape) == 3 else out[0]


def _z_bounds(bounds: Tuple[np.ndarray, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Per-slice (lo, hi) arrays shaped (Z, 1, 1) to broadcast over a block's voxels."""
    return bounds[0][:, None, None], bounds[1][:, None, None]


def _to_unit(block: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> "torch.Tensor":
    import torch

    scale = np.where(hi > lo, hi - lo, 1.0)
    x = ((block.astype(np.float64) - lo) / scale).astype(np.float32)   # float64: spans near ±3e38 overflow float32
    flat = (hi <= lo).reshape(-1)
    if flat.any() and not flat.all():
        # a constant slice with its own range decodes exactly whatever is coded (clipped to it): coded at the
        # level of the rest, not at 0, it costs no bits for a jump (a saturated plane in 5 slices: 2.46 -> 0.34 bpv)
        x[flat] = x[~flat].mean()
    return torch.from_numpy(np.ascontiguousarray(x))[None, None]


def _from_unit(y: "torch.Tensor", zyx: Sequence[int], lo: np.ndarray, hi: np.ndarray, dtype: np.dtype) -> np.ndarray:
    z, h, w = zyx
    v = y[0, 0, :z, :h, :w].float().numpy().astype(np.float64) * np.where(hi > lo, hi - lo, 1.0) + lo
    v = np.clip(v, lo, hi)
    # an aligned slice range may reach past the type's (slice_ranges.aligned): clipped, never wrapped or inf
    if np.dtype(dtype).kind in "iu":
        v = np.clip(np.rint(v), np.iinfo(dtype).min, np.iinfo(dtype).max)
    else:
        v = np.clip(v, np.finfo(dtype).min, np.finfo(dtype).max)
    return v.astype(dtype)


@register_codec
class Factorized3DCodec(VolumetricCodec):
    codec_id = "factorized3d"
    arch = "factorized3d"
    description = "learned 3D (Conv3d) factorized prior, whole z-stack at once"



@register_codec
class Hyperprior3DCodec(VolumetricCodec):
    codec_id = "hyperprior3d"
    arch = "hyperprior3d"
    description = "learned 3D (Conv3d) scale hyperprior, whole z-stack at once"


@register_codec
class MeanScaleVbr3DCodec(VolumetricCodec):
    codec_id = "mbt2018-mean-vbr3d"
    arch = "mbt2018-mean-vbr3d"
    # No Y/X halo: the halo is coded twice and, with Y/X padded to 64, cost +24 % rate on 13×512×1024 (aligned
    # cores) against +0 % without it; the seams stay mild (MSE near block edges / elsewhere 1.05).
    block_halo: ClassVar[Tuple[int, int, int]] = (2, 0, 0)
    latent_grid = True
    description = "learned 3D (Conv3d) transforms around the variable-rate mean-scale hyperprior, whole z-stack"
