"""How CompressAI models are run for coding: exact thread control, entropy tables, faster indexes.

Learned entropy coding is only exact when encoder and decoder compute the entropy parameters
bit-identically, so everything that touches the tables runs with a fixed thread count.
"""
import copy
import threading
import weakref
import zlib
from typing import Dict, Optional, Set

import numpy as np
import torch
import torch.nn as nn

# GaussianConditional buffers derived from its scale table (rebuilt on load, never stored).
GC_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


class fixed_threads:
    """Run a block with exactly ``n`` torch intra-op threads, restoring the previous count.

    Learned entropy coding is only exact when encoder and decoder compute the entropy parameters
    bit-identically; the float reductions inside convolutions depend on the thread count.
    """

    _lock = threading.RLock()

    def __init__(self, n: int):
        self.n = int(n)

    def __enter__(self):
        self._lock.acquire()
        self.prev = torch.get_num_threads()
        if self.prev != self.n:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if torch.get_num_threads() != self.prev:
            torch.set_num_threads(self.prev)
        self._lock.release()
        return False


_TALLY = threading.local()


class symbol_tally:
    """CRC32 of every latent symbol entropy-decoded while it is active (``with tally:``), in order.

    Why: on another CPU type a decoder's float arithmetic can round a few output pixels differently
    while the entropy decoding, the one step where a drift corrupts the image, stays exact. Equal
    tallies at encode and decode show that the decoder recovered exactly the latents the encoder
    wrote. Re-entering the same tally continues it (one tally per stream, entered per tile).
    """

    def __init__(self):
        self.crc, self.n = 0, 0

    def add(self, values) -> None:
        a = np.asarray(values, dtype="<i4").reshape(-1)
        self.crc = zlib.crc32(a.tobytes(), self.crc) & 0xFFFFFFFF
        self.n += a.size

    @property
    def value(self) -> Optional[int]:
        """The checksum, or None when nothing was counted (nothing to vouch for)."""
        return self.crc if self.n else None

    def __enter__(self):
        self._prev = getattr(_TALLY, "active", None)
        _TALLY.active = self
        return self

    def __exit__(self, *exc):
        _TALLY.active = self._prev
        return False


def record_symbols(values) -> None:
    """Add decoded symbols to the tally active in this thread, if any."""
    t = getattr(_TALLY, "active", None)
    if t is not None:
        t.add(values)


class _TalliedCoder:
    """An entropy model's coder that reports the symbols it decodes to the active tally."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def decode_with_indexes(self, *args, **kwargs):
        values = self._inner.decode_with_indexes(*args, **kwargs)
        record_symbols(values)
        return values


_F64: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def float64_copy(module: nn.Module) -> nn.Module:
    """A cached float64 copy of a (frozen, coding-time) module."""
    m = _F64.get(module)
    if m is None:
        m = _F64[module] = copy.deepcopy(module).double().to(memory_format=torch.contiguous_format)
    return m


class exact_hyper:
    """While coding, run a model's hyper-synthesis ``h_s`` in float64 and round its output to float32 once.

    Why: the entropy decoder's scale indexes come from ``h_s``. Another CPU's float32 kernels (other
    summation orders) move them by ~1e-7 relative, enough to flip an index somewhere in a large latent,
    after which the symbols desynchronise (measured with oneDNN switched off: 1 of 4 1024² bright-field
    images with ``mbt2018-mean-vbr``). Computed in float64 and rounded once, both sides agree except
    where the float64 drift (~1e-16) straddles a float32 rounding boundary: practically never.
    """

    def __init__(self, model: nn.Module, on: bool = True):
        self.h_s = getattr(model, "h_s", None) if on else None

    def __enter__(self):
        if self.h_s is not None:
            h64 = float64_copy(self.h_s)
            self.h_s.forward = lambda x: h64(x.double()).to(x.dtype)
        return self

    def __exit__(self, *exc):
        if self.h_s is not None:
            del self.h_s.forward
        return False


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 autocast natively (AVX-512/AMX); elsewhere it is emulated and slower."""
    probe = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    return "AVX512" in str(probe).upper() or "AMX" in str(probe).upper()


def gaussian_table_keys(model: nn.Module) -> Set[str]:
    """State-dict keys of the GaussianConditional CDF tables (they depend only on the scale table)."""
    from compressai.entropy_models import GaussianConditional

    return {f"{name}.{b}" for name, mod in model.named_modules() if isinstance(mod, GaussianConditional)
            for b in GC_BUFFERS}


MAX_CDF_ENTRIES = 1 << 26   # a padded table larger than this (256 MB) is a damaged or crafted file


def pack_cdf_tables(state: Dict[str, torch.Tensor]) -> None:
    """Store each 2-D ``_quantized_cdf`` without its zero padding: the used part of every row, flat.

    Rows are as long as the widest channel's range, so one wide latent channel made most of a
    factorized file's table padding. :func:`unpack_cdf_tables` restores the same tensor exactly.
    """
    for k in [k for k in state if k.endswith("._quantized_cdf")]:
        cdf, length = state[k], state.get(k[: -len("_quantized_cdf")] + "_cdf_length")
        if cdf.ndim == 2 and length is not None and length.numel() == cdf.shape[0]:
            state[k] = torch.cat([row[: int(n)] for row, n in zip(cdf, length)]) if cdf.numel() else cdf.reshape(-1)


def unpack_cdf_tables(state: Dict[str, torch.Tensor]) -> None:
    """Undo :func:`pack_cdf_tables` (2-D tables, as older files store them, are left as they are)."""
    for k in [k for k in state if k.endswith("._quantized_cdf")]:
        flat, length = state[k], state.get(k[: -len("_quantized_cdf")] + "_cdf_length")
        if flat.ndim != 1:
            continue
        if length is None or length.ndim != 1 or length.dtype != torch.int32 or bool((length < 0).any()):
            raise ValueError(f"{k}: packed table without valid row lengths")
        n = [int(v) for v in length]
        width = max(n, default=0)
        if sum(n) != flat.numel() or len(n) * width > MAX_CDF_ENTRIES:
            raise ValueError(f"{k}: packed table of {flat.numel()} entries does not match its row lengths")
        out = torch.zeros((len(n), width), dtype=flat.dtype)
        for row, part in zip(out, torch.split(flat, n)):
            row[: part.numel()] = part
        state[k] = out


def masked_convs(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Name -> causal mask of every masked convolution (the context models' ``context_prediction``)."""
    return {name: mod.mask for name, mod in model.named_modules()
            if isinstance(getattr(mod, "mask", None), torch.Tensor) and isinstance(getattr(mod, "weight", None),
                                                                                  torch.Tensor)
            and mod.mask.shape == mod.weight.shape}


def pack_masked_weights(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Store each masked convolution as the taps its mask keeps (flat), without the mask.

    The mask is fixed by the architecture and the masked-out taps never act (every use multiplies by the
    mask), yet both were stored in full: a fifth of a context model's file. :func:`unpack_masked_weights`
    rebuilds the same effective convolution.
    """
    for name, mask in masked_convs(model).items():
        state.pop(f"{name}.mask", None)
        w = state.get(f"{name}.weight")
        if w is not None and w.shape == mask.shape:
            state[f"{name}.weight"] = w[mask.bool()]


def unpack_masked_weights(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Undo :func:`pack_masked_weights`. The mask always comes from the architecture: a stored one (older
    files) must equal it, since a mask that lets the context see undecoded symbols would break decoding."""
    for name, mask in masked_convs(model).items():
        stored = state.get(f"{name}.mask")
        if stored is not None and (stored.shape != mask.shape or not torch.equal(stored.float(), mask.float())):
            raise ValueError(f"{name}.mask is not the architecture's causal mask")
        state[f"{name}.mask"] = mask.detach().clone()
        w = state.get(f"{name}.weight")
        if w is not None and w.ndim == 1:
            keep = mask.bool()
            if w.numel() != int(keep.sum()):
                raise ValueError(f"{name}.weight: {w.numel()} packed taps, the mask keeps {int(keep.sum())}")
            full = torch.zeros(mask.shape, dtype=w.dtype)
            full[keep] = w
            state[f"{name}.weight"] = full


def rebuild_gaussian_tables(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Recompute the GaussianConditional CDF tables from the stored scale table (deterministic)."""
    from compressai.entropy_models import GaussianConditional

    for name, mod in model.named_modules():
        if isinstance(mod, GaussianConditional) and f"{name}._quantized_cdf" not in state:
            with fixed_threads(1):
                mod.update_scale_table(state[f"{name}.scale_table"].float(), force=True)
            for b in GC_BUFFERS + ("scale_table",):
                state[f"{name}.{b}"] = getattr(mod, b).clone()


def solve_bottleneck_quantiles(model: nn.Module) -> None:
    """Bisect every EntropyBottleneck's quantiles from its density, round them to fp16, rebuild tables.

    The aux loss only approaches the quantiles slowly (short GPU runs leave it far from converged,
    which inflates the real streams).
    """
    from compressai.entropy_models import EntropyBottleneck

    with fixed_threads(1), torch.no_grad():
        for eb in model.modules():
            if isinstance(eb, EntropyBottleneck):
                eb._update_quantiles()
                eb.quantiles.copy_(eb.quantiles.half().float())
        model.update(force=True)


def _fast_build_indexes(gc):
    """GaussianConditional.build_indexes as one ``searchsorted`` instead of 63 full-tensor passes.

    Same comparisons, hence the same indexes: index = #{table[k] < scale, k < last}.
    """
    def build_indexes(scales: torch.Tensor) -> torch.Tensor:
        scales = gc.lower_bound_scale(scales).contiguous()
        return torch.searchsorted(gc.scale_table[:-1].to(scales.dtype).contiguous(), scales).int()

    return build_indexes


def channels_last_by_rank(model: nn.Module, training: bool = False) -> nn.Module:
    """Channels-last memory for every convolution, by its rank (2D and 3D layers may share a model).

    ``training``: leave the 1-channel 3D convolutions contiguous (coding keeps them channels-last: the
    decoder must compute exactly as the encoder that wrote existing streams did)."""
    for m in model.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv3d, nn.ConvTranspose3d)) and w is not None:
            if training and w.dim() == 5 and 1 in w.shape[:2]:
                # oneDNN's bf16 weight gradient of a 1-channel channels-last 3D convolution came out as
                # 1e37/NaN (torch 2.14 CPU, first and last layer of the 3D models); they stay contiguous
                continue
            m.to(memory_format=torch.channels_last if w.dim() == 4 else torch.channels_last_3d)
    return model


def prepare_for_coding(model: nn.Module, channels_last: bool) -> nn.Module:
    """Eval mode, the fast index builder, tallied entropy decoding, channels-last memory for 2D models on CPU."""
    from compressai.entropy_models import GaussianConditional

    model.eval()
    for m in model.modules():
        if isinstance(m, GaussianConditional):
            m.build_indexes = _fast_build_indexes(m)
        coder = m.__dict__.get("entropy_coder")
        if coder is not None and not isinstance(coder, _TalliedCoder):
            m.entropy_coder = _TalliedCoder(coder)
    if channels_last:  # oneDNN convolutions are ~1.5x faster channels-last on CPU
        model.to(memory_format=torch.channels_last)
    return model
