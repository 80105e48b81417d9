"""Shared test helpers (a module, not conftest, so every test folder can import it)."""
from pathlib import Path

import numpy as np


def smooth_image(shape, dtype=np.uint16, seed=0, bits=16):
    """A microscopy-like test image: blurred blobs + noise, using ``bits`` of the range."""
    from scipy.ndimage import gaussian_filter

    r = np.random.default_rng(seed)
    base = gaussian_filter(r.random(shape), sigma=3) + 0.05 * r.random(shape)
    base = (base - base.min()) / (base.max() - base.min())
    if np.dtype(dtype).kind == "f":
        return (base * 1000.0 - 200.0).astype(dtype)
    top = min(2 ** bits - 1, np.iinfo(dtype).max)
    return np.round(base * top).astype(dtype)


def jxr_czi(src, dst, edit=None) -> None:
    """``src`` (uncompressed Gray8 subblocks) with every subblock re-coded as lossless JPEG XR, as ZEN can save it;
    ``edit(codestream)`` may change the first one's codestream (a bytearray) in place."""
    import struct

    import imagecodecs

    b = bytearray(Path(src).read_bytes())
    d = b.find(b"ZISRAWDIRECTORY")
    e = d + 32 + 128
    for k in range(struct.unpack_from("<i", b, d + 32)[0]):
        pos, n = struct.unpack_from("<q", b, e + 6)[0], struct.unpack_from("<i", b, e + 28)[0]
        dims = {bytes(b[e + 32 + 20 * j:e + 36 + 20 * j]).rstrip(b"\0"): struct.unpack_from("<i", b, e + 48 + 20 * j)[0]
                for j in range(n)}
        meta_size, _, size = struct.unpack_from("<iiq", b, pos + 32)
        start = pos + 32 + max(256, 48 + 20 * n) + meta_size
        plane = np.frombuffer(bytes(b[start:start + size]), np.uint8).reshape(dims[b"Y"], dims[b"X"])
        jxr = bytearray(imagecodecs.jpegxr_encode(plane, level=1.0))
        if edit is not None and k == 0:
            edit(jxr)
        b[start:start + len(jxr)] = jxr
        struct.pack_into("<q", b, pos + 40, len(jxr))   # the subblock's DataSize
        for entry in (e, pos + 48):                      # JpgXr, in the directory and in the subblock's own entry
            struct.pack_into("<i", b, entry + 18, 4)
        e += 32 + 20 * n
    Path(dst).write_bytes(bytes(b))
