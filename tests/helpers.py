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


def write_lsm(path, data, scan_type=0, voxel_m=(1e-6, 2e-7, 2e-7), declare=None, thumbnails=True) -> None:
    """A Zeiss LSM file as LSM 510-880 write one: each image page holds one plane's channels (planar), followed
    by a reduced thumbnail page; a CZ_LSMINFO block (tag 34412) on the first page says the dimensions and scan
    type. ``data`` is (T, Z, C, Y, X); ``declare`` overrides CZ_LSMINFO fields (a damaged header)."""
    import tifffile
    from tifffile import TIFF

    n_t, n_z, n_c, y, x = data.shape
    rec = np.zeros(1, np.dtype(TIFF.CZ_LSMINFO))
    fields = dict(MagicNumber=67127628, StructureSize=rec.dtype.itemsize, DimensionX=x, DimensionY=y,
                  DimensionZ=n_z, DimensionChannels=n_c, DimensionTime=n_t, ScanType=scan_type,
                  DataType=1 if data.dtype == np.uint8 else 2, VoxelSizeX=voxel_m[2], VoxelSizeY=voxel_m[1],
                  VoxelSizeZ=voxel_m[0])
    fields.update(declare or {})
    for k, v in fields.items():
        rec[k] = v
    info = rec.tobytes()
    with tifffile.TiffWriter(path) as tw:
        for i, plane in enumerate(data.reshape(n_t * n_z, n_c, y, x)):
            tw.write(plane if n_c > 1 else plane[0], photometric="minisblack", planarconfig="separate",
                     metadata=None, extratags=[(34412, "B", len(info), info, True)] if i == 0 else [])
            if thumbnails:
                thumb = plane[:, ::4, ::4].copy()
                tw.write(thumb if n_c > 1 else thumb[0], photometric="minisblack", planarconfig="separate",
                         subfiletype=1, metadata=None)
    if n_c == 2:
        _lsm_bits_at_offset(path)


def _lsm_bits_at_offset(path) -> None:
    """Zeiss stores two channels' BitsPerSample (two uint16, which would fit in the entry) at an offset; tifffile
    reads an LSM's 2-value BitsPerSample that way, so the file must too."""
    import struct

    b = bytearray(Path(path).read_bytes())
    at = struct.unpack_from("<I", b, 4)[0]
    while at:
        n = struct.unpack_from("<H", b, at)[0]
        for e in range(at + 2, at + 2 + 12 * n, 12):
            tag, _, count = struct.unpack_from("<HHI", b, e)
            if tag == 258 and count == 2:
                values = bytes(b[e + 8:e + 12])
                b[e + 8:e + 12] = struct.pack("<I", len(b))
                b += values
        at = struct.unpack_from("<I", b, at + 2 + 12 * n)[0]
    Path(path).write_bytes(bytes(b))


def write_stk(path, stack, z_step=0.5, times=None) -> None:
    """A MetaMorph STK: one TIFF page whose strip holds every plane in turn, its UIC2Tag one entry per plane (z
    distance as a rational, dates and times); z distances 0 with rising ``times`` (ms) make it a time series."""
    import struct

    import tifffile

    n, y, x = stack.shape
    uic2 = []
    for k in range(n):
        z = 0 if times is not None else int(round(z_step * 1000))
        uic2 += [z, 1000, 2460000, times[k] if times is not None else 0, 2460000, 0]
    tifffile.imwrite(path, stack.reshape(n * y, x), photometric="minisblack", metadata=None, rowsperstrip=n * y,
                     extratags=[(33628, 4, 1, [28], True), (33629, 5, 3 * n, uic2, True)])
    b = bytearray(Path(path).read_bytes())
    at = struct.unpack_from("<I", b, 4)[0]
    for e in range(at + 2, at + 2 + 12 * struct.unpack_from("<H", b, at)[0], 12):
        tag = struct.unpack_from("<H", b, e)[0]
        if tag == 257:   # ImageLength: one plane
            struct.pack_into("<I" if struct.unpack_from("<H", b, e + 2)[0] == 4 else "<H", b, e + 8, y)
        elif tag == 33629:   # UIC2Tag counts planes, each six uint32
            struct.pack_into("<I", b, e + 4, n)
    Path(path).write_bytes(bytes(b))
