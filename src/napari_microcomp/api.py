"""One-call Python API used by the CLI and the widgets: compress, decompress, measure."""
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np

from . import container, metrics
from ._validate import as_array, as_coded, check_image
from .codecs import Codec, decode, get_codec
from .ratecontrol import compress_to_target


@dataclass
class CompressResult:
    """A stream, its reconstruction and what it cost."""

    data: bytes
    reconstruction: np.ndarray
    metrics: Dict[str, float]
    encode_seconds: float
    decode_seconds: float
    codec: Codec
    config: Dict[str, Any] = field(default_factory=dict)
    target: Optional[Dict[str, Any]] = None
    notes: List[str] = field(default_factory=list)   # what the user should know, e.g. weights of another modality


def compress_array(array, codec: Union[str, Codec], quality: Optional[int] = None,
                   target: Optional[str] = None, with_ms_ssim: bool = True,
                   meta: Optional[Dict[str, Any]] = None, **params) -> CompressResult:
    """Compress ``array`` with ``codec`` at ``quality`` (or to ``target``, e.g. ``"psnr=40"``),
    decode the stream back and measure it. ``meta`` (e.g. pixel sizes) goes into the header.
    The input array is never modified."""
    if isinstance(array, (list, tuple)):   # so the reconstruction keeps the type numpy gives the list
        array = as_array(array)
    a = check_image(array)
    target_info = None
    if target:
        name = codec if isinstance(codec, str) else codec.codec_id
        t0 = time.perf_counter()
        base = dict(codec.params) if isinstance(codec, Codec) else dict(params)
        cls = type(codec) if isinstance(codec, Codec) else None

        def make(**kw):   # keep the caller's parameters (weights, threads, …) on every trial
            merged = {**base, **kw}
            return cls(**merged) if cls is not None else get_codec(name, **merged)

        rc = compress_to_target(a, name, target, meta=meta, make=make,
                                source=array if isinstance(array, np.ndarray) else None)
        enc_s = time.perf_counter() - t0
        c, data = rc.codec, rc.data
        target_info = {"target": rc.target, "value": rc.value, "achieved": rc.achieved, "met": rc.met,
                       "trials": rc.trials}
    else:
        c = codec if isinstance(codec, Codec) else get_codec(codec, quality=quality, **params)
        t0 = time.perf_counter()
        data = c.encode(array if isinstance(array, np.ndarray) else a, meta=meta)  # int64 in, int64 out
        enc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recon = decode(data)
    dec_s = time.perf_counter() - t0
    header = container.read_header(data)[0]
    # compared in the coded type: int16 with negatives carries the same offset as ``a``
    m = metrics.all_metrics(a, as_coded(recon, header.meta), len(data), with_ms_ssim=with_ms_ssim,
                            raw_bytes=array.nbytes if isinstance(array, np.ndarray) else None)
    notes = c.notes(a, header)
    return CompressResult(data=data, reconstruction=recon, metrics=m, encode_seconds=enc_s,
                          decode_seconds=dec_s, codec=c, config=c.get_config(), target=target_info,
                          notes=notes)
