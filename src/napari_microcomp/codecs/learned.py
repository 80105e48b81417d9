"""Learned 2D codecs: CompressAI's nine image architectures, 1-channel, as registered codecs.

``get_codec("mbt2018-mean", quality=4)`` picks the weights for that quality (see
:mod:`napari_microcomp.weights` for where they come from; ``weights=`` overrides). VBR
architectures use one weight file for all eight qualities.

Intensity: the image (the whole volume for 3D input) is mapped to [0, 1] with its min and max,
stored in ``header.norm``; decoding maps back in float64 and rounds/clips to the input dtype.

Tiles and seams: planes larger than ``tile`` (default 1024, a multiple of 64) are cut into
non-overlapping tiles on a fixed grid; each tile is replicate-padded to a multiple of 16 (its latent to
a multiple of 4 for the hyperprior: :mod:`.latent_grid`) and coded independently (bounded memory, one
payload per tile). Tiles do not share context, so at low rates a faint block edge can appear every
``tile`` pixels; a larger ``tile`` trades memory for fewer seams.

Exactness: entropy decoding is only correct when the decoder recomputes the entropy parameters
bit-identically. Encode and decode therefore run with a fixed torch thread count (``threads``,
stored in the stream), and the stream records the CRC32 of the reconstruction the encoder
produced and of the latent symbols it wrote: a decoder that recovers other symbols raises
StreamError instead of returning garbage; one whose float arithmetic merely rounds a few pixels
differently (another CPU type) returns its result with a DecodeDriftWarning.
The weights' fingerprint is stored too, so decoding with other weights fails clearly.
"""
import struct
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import container, outliers, slice_ranges
from .._progress import checkpoint
from .._validate import real_number
from ..errors import CodecError, StreamError, WeightsNotFoundError
from ..modality import MODALITIES
from ..tiling import fixed_grid
from ..models.registry import LAMBDAS_MSE, get_arch, list_archs
from ..weights.download import cached_url, secure_url
from ..weights.load import LoadedModel, encodable, load_by_id, load_url
from ..weights.locate import ENV_WEIGHTS
from .base import Codec
from .dc import dc_offset, dc_offsets, to_dtype, with_dc
from .latent_grid import GRID, GRIDS, OLD_GRID, latent_shape, on_grid
from .weight_levels import MAX_THREADS, WeightLevels, default_threads
from .vbr_level import check_level, vbr_gain
from .registry import register_codec

if TYPE_CHECKING:  # torch is imported when a model runs, not when codecs are listed
    import torch

DEFAULT_TILE = 1024
# Peak working memory of one tile's coding, per pixel: measured 190 B (mbt2018-mean-vbr, one 2048² tile).
WORK_BYTES_PER_PIXEL = 256


def check_tile_memory(codec_id: str, tile: int, plane_hw: Sequence[int], error=StreamError) -> None:
    """Refuse a tile whose coding would need more memory than the decode budget, before any of it is allocated
    (a stream's own ``tile`` is not bounded otherwise: one 16384² tile asks for ~50 GB)."""
    h, w = (min(int(tile), int(s)) for s in plane_hw)
    need = h * w * WORK_BYTES_PER_PIXEL
    if need > container.decode_budget():
        fix = ("raise $" + container.ENV_BUDGET + " if the stream is genuine" if error is StreamError
               else "choose a smaller tile")
        raise error(f"{codec_id}: a {h}×{w} tile needs ~{need / 2**30:.3g} GiB of working memory, above the "
                    f"decode budget of {container.decode_budget() / 2**30:.3g} GiB; {fix}")
_PAYLOAD = struct.Struct("<BB")


def _pack_payload(strings: Sequence[bytes], shape: Sequence[int]) -> bytes:
    head = _PAYLOAD.pack(len(strings), len(shape)) + struct.pack(f"<{len(shape)}H", *shape)
    head += struct.pack(f"<{len(strings)}I", *[len(s) for s in strings])
    return head + b"".join(strings)


def _unpack_payload(data: bytes) -> Tuple[List[bytes], Tuple[int, ...]]:
    try:
        n, nd = _PAYLOAD.unpack_from(data, 0)
        off = _PAYLOAD.size
        shape = struct.unpack_from(f"<{nd}H", data, off)
        off += 2 * nd
        lens = struct.unpack_from(f"<{n}I", data, off)
        off += 4 * n
    except struct.error as exc:
        raise StreamError(f"learned payload header is damaged ({exc})") from exc
    if off + sum(lens) != len(data):
        raise StreamError("learned payload lengths do not add up (damaged stream)")
    out = []
    for ln in lens:
        out.append(data[off:off + ln])
        off += ln
    return out, tuple(shape)


class LearnedCodec(WeightLevels, Codec):
    """A CompressAI model as a codec. Subclasses set ``arch`` (a name in :mod:`~napari_microcomp.models.registry`).

    Parameters (besides ``quality`` 1..8): ``weights`` (``"auto"``/None: the weights for the image's
    modality, detected by :func:`~napari_microcomp.modality.detect_modality` and recorded in the stream;
    ``"transmitted"`` or ``"fluorescence"``; a path, a URL, or ``"compressai"``), ``threads`` (torch
    threads for coding; recorded in the stream), ``refine`` (Adam steps of encode-time latent refinement,
    :mod:`~napari_microcomp.codecs.refine`; slower encode, same decoder),
    ``tile`` (tile size, multiple of 64); recorded by the encoder: ``ep`` (entropy-parameter precision, 64 bits;
    streams without it were coded in 32) and ``grid`` (tiles padded to a multiple of 16; streams without it
    were padded to 64).
    """

    family: ClassVar[str] = "learned"
    arch: ClassVar[str] = ""
    quality_table: ClassVar[Dict[int, Any]] = {q: lam for q, lam in enumerate(LAMBDAS_MSE, 1)}

    def __init__(self, quality: Optional[int] = None, lossless: bool = False, **native: Any):
        super().__init__(quality=quality, lossless=lossless, **native)
        tile = self.params.get("tile", DEFAULT_TILE)
        if not isinstance(tile, int) or tile < 64 or tile % 64:
            raise CodecError(f"{self.codec_id}: tile must be a positive multiple of 64, got {tile!r}")
        refine = self.params.get("refine")
        if refine is not None and (isinstance(refine, bool) or not isinstance(refine, int) or not 0 <= refine <= 10_000):
            raise CodecError(f"{self.codec_id}: refine must be a number of steps 0..10000, got {refine!r}")
        if "level" in self.params:   # an explicit rate level wins over quality, as native values do
            self.params["level"] = check_level(self.codec_id, self.params["level"])
            self.quality = None
        gain = self.params.get("gain")
        if gain is not None and (not real_number(gain) or not 1e-6 <= gain <= 1e6):
            raise CodecError(f"{self.codec_id}: the recorded latent gain {gain!r} is not a plausible number")
        threads = self.params.get("threads")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or not 1 <= threads <= MAX_THREADS):
            raise CodecError(f"{self.codec_id}: threads must be an integer 1..{MAX_THREADS}, got {threads!r}")
        self._check_ep()
        grid = self.params.get("grid")
        if grid is not None and (isinstance(grid, bool) or grid not in GRIDS):
            raise CodecError(f"{self.codec_id}: grid (tile padding multiple) must be one of {GRIDS}, got {grid!r}")

    def _grid(self) -> int:
        return int(self.params.get("grid") or OLD_GRID)

    @classmethod
    def extra_params(cls) -> Sequence[str]:
        return ("weights", "threads", "tile", "weights_id", "refine", "gain", "ep", "grid")

    def _load_for_decode(self) -> LoadedModel:
        """The model a stream names; if the named file changed, any known file with the recorded fingerprint."""
        want = self.params.get("weights_id")
        w = self.params.get("weights")
        if isinstance(w, str) and w.startswith(("http://", "https://")):
            # a file must never make the decoder go online: only an earlier, explicit download is used
            if secure_url(w) and cached_url(w) is not None:
                return load_url(self.arch, w)
            alt = load_by_id(self.arch, self._q(), want) if want else None
            if alt is not None:
                return alt
            raise WeightsNotFoundError(
                f"{self.codec_id}: the stream names weights at {w}; decoding never downloads. If you trust the "
                f"source, fetch the file yourself and put it in ${ENV_WEIGHTS} as "
                f"{self.spec.weights_filename(self._q())} (it is found by its fingerprint)")
        return self._named_model(want)

    # -- coding of one tile ------------------------------------------------------------------

    def _code_tile(self, lm: LoadedModel, x: np.ndarray, tally) -> Tuple[bytes, np.ndarray]:
        """Payload and reconstruction of one tile; ``tally`` counts the symbols as the decoder will decode them."""
        import torch
        import torch.nn.functional as F

        from ..models.coding import exact_hyper
        from .autoregressive import ar_compress
        from .refine import refine_latents, with_latents

        h, w = x.shape
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
        m = self._grid()
        t = F.pad(t, (0, -w % m, 0, -h % m), mode="replicate")
        if lm.channels != 1:
            t = t.expand(1, lm.channels, -1, -1).contiguous()
        t = t.contiguous(memory_format=torch.channels_last)
        model = on_grid(lm.model, latent_shape(h, w, m))
        n_refine = int(self.params.get("refine") or 0)
        if n_refine > 0:
            spec = self.spec
            s = self._q() - 1 if spec.vbr else None
            gain = None
            if spec.vbr:   # the weights' own λ table (a file may be trained with another one)
                table = lm.meta.get("lambda")
                table = table if isinstance(table, list) and len(table) == len(spec.lambdas) else spec.lambdas
                lam = float(table[s])
                if self._fraction():   # λ interpolated like the gain
                    gain = float(self.params["gain"])
                    lam = vbr_gain(table, float(self.params["level"]))
            else:
                lam = float(lm.meta.get("lambda") or spec.lmbda(int(self.quality)))
            y, z = refine_latents(model, t, lam, n_refine, s=s, n_px=h * w, gain=gain)
            model = with_latents(model, y, z)
        if self.spec.coding == "ar":
            with tally:
                strings, shape, rec = ar_compress(model, t, self._ep())
            return _pack_payload(strings, shape), self._crop(rec, h, w)
        with exact_hyper(lm.model, self._ep() == 64):
            out = model.compress(t, **self._kwargs())
        strings = [s[0] for s in out["strings"]]
        shape = tuple(int(v) for v in out["shape"])
        with tally:
            rec = self._decode_tile(lm, strings, shape, h, w)
        return _pack_payload(strings, shape), rec

    def _decode_tile(self, lm: LoadedModel, strings: List[bytes], shape: Tuple[int, ...],
                     h: int, w: int) -> np.ndarray:
        from ..models.coding import exact_hyper

        model = on_grid(lm.model, latent_shape(h, w, self._grid()))
        if self.spec.coding == "ar":
            from .autoregressive import ar_decompress

            return self._crop(ar_decompress(model, strings, shape, self._ep()), h, w)
        with exact_hyper(lm.model, self._ep() == 64):
            rec = model.decompress([[s] for s in strings], list(shape), **self._kwargs())["x_hat"]
        return self._crop(rec, h, w)

    def _check_payload(self, lm: LoadedModel, strings: List[bytes], zshape: Tuple[int, ...], h: int,
                       w: int) -> None:
        """Refuse a payload whose latent layout does not fit its tile before any native decoder runs.

        (A payload declaring a bigger latent than the tile has made the rANS decoder read out of bounds.)
        """
        hyper = hasattr(lm.model, "h_a")
        want = latent_shape(h, w, self._grid())   # the factorized prior codes y, the others z (y ÷ 4)
        if hyper:
            want = (-(-want[0] // 4), -(-want[1] // 4))
        if tuple(zshape) != want or len(strings) != (2 if hyper else 1):
            raise StreamError(f"{self.codec_id}: a tile payload declares a {tuple(zshape)} latent in "
                              f"{len(strings)} string(s), but a {h}×{w} tile has {want} in {2 if hyper else 1}; "
                              "damaged or crafted stream")

    @staticmethod
    def _crop(rec: "torch.Tensor", h: int, w: int) -> np.ndarray:
        rec = rec[0, :, :h, :w]
        rec = (rec.mean(0) if rec.shape[0] != 1 else rec[0]).numpy()
        if not np.isfinite(rec).all():
            # NaN would be cast to an arbitrary integer; a damaged latent is the usual cause
            raise StreamError("the learned decoder produced NaN/Inf (damaged stream or incompatible weights)")
        return rec

    # -- Codec interface ---------------------------------------------------------------------
    def _encode(self, a: np.ndarray, header: container.Header) -> List[bytes]:
        import torch

        from ..models.coding import fixed_threads, symbol_tally

        weights = self._resolve_weights(a)
        lm = encodable(self.load(weights), self.codec_id)
        if isinstance(weights, str) and weights in MODALITIES:
            header.codec["weights"] = weights
        threads = int(self.params.get("threads") or default_threads())
        header.codec["threads"] = threads
        header.codec["weights_id"] = lm.weights_id
        if self._fraction():   # computed from these weights, recorded; never recomputed by a decoder
            self.params["gain"] = header.codec["gain"] = vbr_gain(lm.model.Gain.detach().tolist(),
                                                                  float(self.params["level"]))
        self.params["grid"] = header.codec["grid"] = self.params.get("grid") or GRID
        tile = int(self.params.get("tile", DEFAULT_TILE))
        header.codec["tile"] = tile   # recorded: a later change of the default must not break old streams
        check_tile_memory(self.codec_id, tile, a.shape[-2:], CodecError)
        if hasattr(lm.model, "h_s"):
            self.params["ep"] = header.codec["ep"] = self.params.get("ep") or 64
        lo, hi, odd, _ = slice_ranges.split(a)   # a blank, saturated or flash slice keeps its own range
        header.norm = slice_ranges.record({"mode": "minmax", "lo": lo, "hi": hi},
                                          {i: {"lo": r[0], "hi": r[1]} for i, r in odd.items()})
        planes = a[None] if a.ndim == 2 else a
        grid = fixed_grid(*planes.shape[1:], tile)
        header.layout = ("whole" if a.ndim == 2 else "slicewise") if len(grid) == 1 else "tiles"
        if hi == lo and not odd:
            header.check["crc32"] = container.array_crc32(outliers.with_current(a))
            return []
        los, his = slice_ranges.bounds_per_slice(header.norm, len(planes), self.codec_id)
        recon = np.empty(planes.shape, dtype=a.dtype)
        payloads, dcs = [], []
        tally = symbol_tally()
        with fixed_threads(threads), torch.inference_mode():
            n, k = len(planes) * len(grid), 0
            for z, plane in enumerate(planes):
                lo, hi = los[z], his[z]
                span = (hi - lo) or 1.0   # float64: spans near ±3e38 overflow float32 and fed NaN into the coder
                for y0, y1, x0, x1 in grid:
                    checkpoint("encode", k, n, f"{self.codec_id}: tile {k + 1}/{n}")
                    k += 1
                    x = ((plane[y0:y1, x0:x1].astype(np.float64) - lo) / span).astype(np.float32)
                    payload, rec = self._code_tile(lm, x, tally)
                    payloads.append(payload)
                    dcs.append(dc_offset(plane[y0:y1, x0:x1], rec, lo, hi, a.dtype))
                    recon[z, y0:y1, x0:x1] = to_dtype(with_dc(rec, dcs[-1]), lo, hi, a.dtype)
        if any(dcs):
            header.meta["dc"] = dcs
        header.check["crc32"] = container.array_crc32(outliers.with_current(recon.reshape(a.shape)))
        if tally.value is not None:
            header.check["symbols"] = container.symbols_check(header, tally.value)
        return payloads

    def _decode(self, header: container.Header, payloads: List[bytes]) -> np.ndarray:
        import torch

        from ..models.coding import fixed_threads, symbol_tally

        norm = header.norm
        if norm.get("mode") != "minmax":
            raise StreamError(f"{self.codec_id}: unknown intensity mapping {norm.get('mode')!r}")
        lo, hi = slice_ranges.norm_bounds(norm, self.codec_id)
        shape = tuple(header.shape)
        planes_shape = (1, *shape) if len(shape) == 2 else shape
        tile = int(self.params.get("tile", DEFAULT_TILE))
        if hi == lo and "slices" not in norm:
            if payloads:
                raise StreamError(f"{self.codec_id}: constant image with payloads (damaged stream)")
            # verify before allocating: an edited shape must not make a 100-byte stream fill gigabytes
            want = None if "outliers" in header.meta else header.check.get("crc32")   # that covers them: checked later
            if want is not None and container.constant_crc32(lo, header.dtype, int(np.prod(shape))) != want:
                raise StreamError(f"{self.codec_id}: the constant image does not match its recorded checksum")
            return np.full(shape, lo, dtype=header.dtype)
        check_tile_memory(self.codec_id, tile, planes_shape[1:])
        n_tiles = planes_shape[0] * (-(-planes_shape[1] // tile)) * (-(-planes_shape[2] // tile))
        if len(payloads) != n_tiles:   # counted before the grid is built: a shape may promise 10^7 tiles
            raise StreamError(f"{self.codec_id}: expected {n_tiles} tile payloads, got {len(payloads)}")
        grid = fixed_grid(*planes_shape[1:], tile)
        los, his = slice_ranges.bounds_per_slice(norm, planes_shape[0], self.codec_id)
        if self._fraction() and self.params.get("gain") is None:
            raise StreamError(f"{self.codec_id}: a stream at level {self.params['level']} must record its latent "
                              "gain; damaged or crafted stream")
        dcs = dc_offsets(header, n_tiles, self.codec_id)
        lm = self._load_for_decode()
        out = np.empty(planes_shape, dtype=header.dtype)
        threads = int(self.params.get("threads") or default_threads())
        it = iter(payloads)
        tally = symbol_tally()
        with fixed_threads(threads), torch.inference_mode():
            k = 0
            for z in range(planes_shape[0]):
                lo, hi = los[z], his[z]
                for y0, y1, x0, x1 in grid:
                    checkpoint("decode", k, len(payloads), f"{self.codec_id}: tile {k + 1}/{len(payloads)}")
                    k += 1
                    strings, zshape = _unpack_payload(next(it))
                    self._check_payload(lm, strings, zshape, y1 - y0, x1 - x0)
                    with tally:
                        rec = self._decode_tile(lm, strings, zshape, y1 - y0, x1 - x0)
                    out[z, y0:y1, x0:x1] = to_dtype(with_dc(rec, dcs[k - 1]), lo, hi, header.dtype)
        self.decoded_symbols = container.symbols_check(header, tally.value)
        return out.reshape(shape)


def _make(arch: str) -> type:
    spec = get_arch(arch)
    name = "".join(p.capitalize() for p in arch.replace("-", "_").split("_")) + "Codec"
    attrs = {"codec_id": arch, "arch": arch, "__module__": __name__,
             "description": f"{spec.description} (CompressAI, 1-channel)",
             "__doc__": f"Learned codec {arch!r}: {spec.description}."}
    if spec.vbr:   # one model, a continuous rate: rate control and the advisor search it like a classical one
        attrs.update(native_param="level", search_range=(1.0, 8.0, False, True),
                     quality_table={q: float(q) for q in range(1, 9)},
                     native_meaning=("rate level 1–8; a fraction interpolates the latent gain between two trained "
                                     "levels (log-linear; the gain used is recorded in the stream)"))
    return register_codec(type(name, (LearnedCodec,), attrs))


LEARNED_CODECS = {arch: _make(arch) for arch in list_archs(ndim=2)}
# module attributes under their own names, so codecs (and results holding them) pickle to a worker process
globals().update({cls.__name__: cls for cls in LEARNED_CODECS.values()})
