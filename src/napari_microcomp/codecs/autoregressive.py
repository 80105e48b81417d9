"""Autoregressive latent coding in wavefronts, for the context-model architectures (mbt2018, cheng2020).

The encoder and decoder of :mod:`.learned` call :func:`ar_compress` / :func:`ar_decompress`; everything else
about those codecs (tiles, normalisation, checks) is shared with the other learned codecs.
"""
from typing import List, Tuple

import torch

from .._progress import checkpoint
from ..models.coding import fixed_threads, float64_copy, record_symbols
from .latent_grid import crop, hyper_synthesis


class _Wavefront:
    """Autoregressive latent coding in wavefronts (for mbt2018 and cheng2020).

    CompressAI codes the latent one position at a time in raster order (thousands of tiny
    convolutions). With a 5×5 causal context, position (i, j) depends only on positions with a
    smaller ``3·i + j``, so every position of one wavefront ``t = 3·i + j`` is coded together:
    ~4·H steps instead of H·W. Encoder and decoder run the identical batched arithmetic, so the
    entropy parameters agree bit for bit; the symbols go into one rANS stream in wavefront order
    (not interchangeable with CompressAI's own raster-order streams).
    """

    K, PAD = 5, 2

    def __init__(self, model, params: torch.Tensor):
        gc = model.gaussian_conditional
        self.model, self.gc, self.params = model, gc, params[0]
        dt = params.dtype
        self.h, self.w = params.shape[-2:]
        self.cdf = gc.quantized_cdf.tolist()
        self.cdf_lengths = gc.cdf_length.reshape(-1).int().tolist()
        self.offsets = gc.offset.reshape(-1).int().tolist()
        cp = model.context_prediction
        # Tiny per-wave convolutions are dominated by oneDNN overhead (~40 ms each with channels-last
        # weights); as matrix products over the gathered 5×5 crops they cost microseconds.
        self.ctx_w = (cp.weight * cp.mask).reshape(cp.weight.shape[0], -1).t().contiguous().to(dt)
        self.ctx_b = cp.bias.to(dt)
        self.ep = [((m.weight.reshape(m.weight.shape[0], -1).t().contiguous().to(dt), m.bias.to(dt))
                    if isinstance(m, torch.nn.Conv2d) else m) for m in model.entropy_parameters]
        self.y_hat = torch.zeros((model.M, self.h + 2 * self.PAD, self.w + 2 * self.PAD), dtype=params.dtype)
        r = torch.arange(self.K)
        self.dy, self.dx = r[:, None], r[None, :]

    def waves(self):
        h, w = self.h, self.w
        for t in range(3 * (h - 1) + w):
            i = torch.arange(max(0, -(-(t - w + 1) // 3)), min(h - 1, t // 3) + 1)
            if len(i):   # a latent 1 or 2 wide has empty wavefronts
                yield i, t - 3 * i

    def entropy_params(self, i: torch.Tensor, j: torch.Tensor):
        crops = self.y_hat[:, i[:, None, None] + self.dy, j[:, None, None] + self.dx].permute(1, 0, 2, 3)
        ctx = torch.addmm(self.ctx_b, crops.reshape(len(i), -1), self.ctx_w)
        gp = torch.cat((self.params[:, i, j].t(), ctx), dim=1)
        for layer in self.ep:   # the 1×1 convolutions of entropy_parameters, as matrix products
            gp = torch.addmm(layer[1], gp, layer[0]) if isinstance(layer, tuple) else layer(gp)
        scales, means = gp.chunk(2, 1)
        return self.gc.build_indexes(scales), means   # in the scales' dtype (models/coding._fast_build_indexes)

    def put(self, i, j, symbols: torch.Tensor, means: torch.Tensor) -> None:
        self.y_hat[:, i + self.PAD, j + self.PAD] = (symbols.float() + means).T

    def latent(self) -> torch.Tensor:
        """The decoded latent, in float32 for the synthesis transform."""
        return self.y_hat[None, :, self.PAD:self.PAD + self.h, self.PAD:self.PAD + self.w].float()

    def encode(self, y: torch.Tensor) -> bytes:
        from compressai.ans import BufferedRansEncoder

        sym_all, idx_all = [], []
        n = 3 * (self.h - 1) + self.w
        for t, (i, j) in enumerate(self.waves()):
            if t % 16 == 0:
                checkpoint("encode", t, n, "autoregressive latents")
            indexes, means = self.entropy_params(i, j)
            symbols = self.gc.quantize(y[0][:, i, j].T, "symbols", means)
            self.put(i, j, symbols, means)
            record_symbols(symbols)   # in the order the decoder will decode them
            sym_all.append(symbols.reshape(-1))
            idx_all.append(indexes.reshape(-1))
        enc = BufferedRansEncoder()
        enc.encode_with_indexes(torch.cat(sym_all).tolist(), torch.cat(idx_all).tolist(), self.cdf,
                                self.cdf_lengths, self.offsets)
        return enc.flush()

    def decode(self, data: bytes) -> None:
        from compressai.ans import RansDecoder

        dec = RansDecoder()
        dec.set_stream(data)
        n = 3 * (self.h - 1) + self.w
        for t, (i, j) in enumerate(self.waves()):
            if t % 16 == 0:
                checkpoint("decode", t, n, "autoregressive latents")
            indexes, means = self.entropy_params(i, j)
            sym = dec.decode_stream(indexes.reshape(-1).tolist(), self.cdf, self.cdf_lengths, self.offsets)
            record_symbols(sym)
            self.put(i, j, torch.tensor(sym, dtype=torch.int32).reshape(indexes.shape), means)


def _hyper_params(model, z_hat: torch.Tensor, ep: int) -> torch.Tensor:
    """``h_s(z_hat)`` in the stream's entropy arithmetic (``ep`` bits).

    Why float64: the entropy parameters must come out identical at encode and decode. In float32 another
    CPU's kernels (other summation orders) move them by ~1e-7 relative, enough for a scale index or a
    context to flip somewhere in a large latent, after which the symbols desynchronise (measured: with
    oneDNN switched off, one of four 512² crops decoded 2,862 wrong pixels). In float64 the same drift is
    ~1e-16 and a flip practically never happens; these layers are small, so it costs little.
    """
    h_s, size = hyper_synthesis(model)   # a latent off the ×4 grid: its parameters cropped to its size
    out = h_s(z_hat) if ep == 32 else float64_copy(h_s)(z_hat.double())
    return (out if size is None else crop(out, size)).contiguous()


def ar_compress(model, x: torch.Tensor, ep: int) -> Tuple[List[bytes], Tuple[int, ...], torch.Tensor]:
    y = model.g_a(x)
    z = model.h_a(y)
    z_strings = model.entropy_bottleneck.compress(z)
    z_hat = model.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
    wf = _Wavefront(model, _hyper_params(model, z_hat, ep))
    with fixed_threads(1):  # tiny per-wave ops: thread barriers would cost more than they save
        y_string = wf.encode(y.contiguous())
    return [y_string, z_strings[0]], tuple(z.shape[-2:]), model.g_s(wf.latent()).clamp_(0, 1)


def ar_decompress(model, strings: List[bytes], shape: Tuple[int, ...], ep: int) -> torch.Tensor:
    z_hat = model.entropy_bottleneck.decompress([strings[1]], list(shape))
    wf = _Wavefront(model, _hyper_params(model, z_hat, ep))
    with fixed_threads(1):
        wf.decode(strings[0])
    return model.g_s(wf.latent()).clamp_(0, 1)
