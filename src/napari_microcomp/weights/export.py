"""Writing compact weight files (fp16 tensors, plain-JSON metadata), atomically.

Codec files (``"napari-microcomp-weights/1"``)::

    {"format", "arch", "quality" (None for VBR), "widths", "state_dict", "meta"}

Label-free files (``"napari-microcomp/labelfree"``, version 1)::

    {"format", "version", "state_dict", "meta": {"kind", "arch", "input", "normalization", "training"}}

Both load with ``torch.load(weights_only=True)`` (:mod:`.load`).

A retired codec file (one a promotion replaced, kept so that old streams still decode) keeps only what
decoding uses: :func:`retire` drops the analysis transforms (``g_a``, ``h_a``: a third of the bytes
of a mean-scale hyperprior) and records the original file's fingerprint, under which it is found.
"""
import io as _io
from pathlib import Path
from typing import Any, Dict, Optional

from ..io_write import atomic_write_bytes
from .fingerprint import plain_meta
from .load import ENCODER_ONLY, FORMAT, LABELFREE_FORMAT, LABELFREE_VERSION


def _save(obj: Dict[str, Any], path) -> Path:
    import torch

    buf = _io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _codec_file(path: Path) -> Dict[str, Any]:
    """The dict of codec weight file ``path``; InputError when it is not one."""
    from ..errors import InputError
    from .load import _torch_load

    d = _torch_load(path, f"{path} is not a readable weight file")
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise InputError(f"{path} is not a codec weight file")
    return d


def export_weights(model, arch: str, path, quality: Optional[int], widths: Dict[str, int],
                   meta: Dict[str, Any]) -> Path:
    """Write a compact (fp16) codec weight file with its metadata, atomically.

    The model is copied to CPU, its floating tensors rounded to fp16, the entropy bottleneck's
    quantiles solved by bisection from its (rounded) density, and the entropy tables rebuilt from
    those values (``update(force=True)``) so that the shipped tables match the shipped parameters
    exactly. The bottleneck tables are stored (never recomputed on load) without their zero padding;
    the Gaussian tables, which depend only on the stored scale table, are rebuilt on load, as are the
    context models' causal masks (only the taps a mask keeps are stored).
    """
    import torch

    from ..models.coding import (gaussian_table_keys, pack_cdf_tables, pack_masked_weights,
                                  solve_bottleneck_quantiles)
    from ..models.registry import get_arch

    spec = get_arch(arch)
    m = spec.factory(**widths)
    m.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    with torch.no_grad():
        for t in list(m.parameters()) + [b for n, b in m.named_buffers()
                                         if b.is_floating_point() and not n.endswith(".bound")]:
            t.copy_(t.half().float())
    solve_bottleneck_quantiles(m)
    gc_tables = gaussian_table_keys(m)
    # The Gaussian tables depend only on the scale table: rebuilt on load (they are most of the bytes).
    # fp16 for the weights; the scale table and the lower bounds (1e-9 underflows to 0 in fp16) stay float32
    state = {k: (v.half() if v.is_floating_point() and not k.endswith(("scale_table", ".bound")) else v)
             for k, v in m.state_dict().items() if k not in gc_tables}
    pack_cdf_tables(state)
    pack_masked_weights(m, state)
    return _save({"format": FORMAT, "arch": arch, "quality": None if spec.vbr else quality,
                  "widths": dict(widths), "state_dict": state, "meta": plain_meta(meta)}, path)


def recompact(path, target=None) -> Path:
    """Rewrite codec weight file ``path`` (to ``target``, default in place, atomically) in the current compact
    storage: unpadded bottleneck tables, masked convolutions as their kept taps. The model it loads computes
    the same; only the bytes, hence the fingerprint, change: retire the old file first (:func:`retire`)."""
    from ..models.coding import pack_cdf_tables, pack_masked_weights, unpack_masked_weights
    from ..models.registry import get_arch

    d = _codec_file(Path(path))
    model = get_arch(d["arch"]).factory(**d["widths"])
    state = dict(d["state_dict"])
    unpack_masked_weights(model, state)   # checks an older file's mask against the architecture's
    pack_cdf_tables(state)
    pack_masked_weights(model, state)
    return _save(dict(d, state_dict=state), Path(target or path))


def with_meta(path, target, extra: Dict[str, Any]) -> Path:
    """Write weight file ``path`` to ``target`` (atomically; may be ``path``) with ``extra`` added to its metadata."""
    from .load import _torch_load

    d = _torch_load(Path(path), f"{path} is not a readable weight file")
    return _save(dict(d, meta=plain_meta({**(d.get("meta") or {}), **extra})), Path(target))


def retire(path, folder) -> Path:
    """Write a decode-only copy of codec weight file ``path`` to ``folder/{stem}.{fingerprint}.pt``
    (``stem``: the architecture's file name, e.g. ``mbt2018-mean-vbr``; ``path`` may be that very file).

    The copy keeps the original's fingerprint in ``meta["weights_id"]`` (streams name that) and is
    marked ``meta["decoder_only"]``: the loader refuses to encode with it. Returns the new path.
    """
    from ..errors import InputError
    from ..models.registry import get_arch
    from .fingerprint import file_id

    path = Path(path)
    d = _codec_file(path)
    meta = dict(d.get("meta") or {})
    if meta.get("decoder_only"):
        raise InputError(f"{path} is already a retired (decode-only) file")
    wid = file_id(path)
    meta.update(decoder_only=True, weights_id=wid, retired_from=path.name)
    state = {k: v for k, v in d["state_dict"].items() if not k.startswith(ENCODER_ONLY)}
    stem = Path(get_arch(d["arch"]).weights_filename(d.get("quality") or 1)).stem
    return _save(dict(d, state_dict=state, meta=plain_meta(meta)), Path(folder) / f"{stem}.{wid}.pt")


def export_labelfree(path, state_dict: Dict[str, Any], meta: Dict[str, Any]) -> Path:
    """Write a compact fp16 label-free weights file atomically (integer buffers kept as they are)."""
    import json

    import torch

    # A JSON round trip guarantees plain types (loadable with weights_only=True, printable as JSON).
    meta = json.loads(json.dumps(meta))
    compact = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu())
               for k, v in state_dict.items()}
    return _save({"format": LABELFREE_FORMAT, "version": LABELFREE_VERSION, "state_dict": compact,
                  "meta": meta}, path)
