"""What a codestream declares (image size, content size), read without decoding: checked before a native
decoder runs, because it allocates whatever its codestream says (our payloads, and the strips and tiles of a TIFF)."""
import struct


class Undecodable(ValueError):
    """The codestream is recognised and says something its native decoder would crash on (not merely unknown)."""


def j2k_dims(data: bytes):
    """Image size from a JPEG 2000 codestream's SIZ marker (inside a JP2 file or bare)."""
    i = data.find(b"\xff\x4f\xff\x51")
    if i < 0 or len(data) < i + 24:
        raise ValueError("no JPEG 2000 SIZ marker")
    x, y, x0, y0 = struct.unpack_from(">IIII", data, i + 8)
    return y - y0, x - x0


def htj2k_dims(data: bytes):
    """:func:`j2k_dims` of a bare HTJ2K codestream, after checking the main header's SIZ, COD and QCD segments
    for what OpenJPH crashes on (one-byte edits killed the process: a tile or sub-sampling size of 0, a QCD
    whose length or style does not fit the decomposition levels, a step-size exponent of 31)."""
    if not data.startswith(b"\xff\x4f\xff\x51"):
        raise Undecodable("an HTJ2K payload that does not start with SOC and SIZ")
    pos, levels, seen = 2, None, set()
    while pos + 4 <= len(data):
        marker, length = struct.unpack_from(">HH", data, pos)
        seg = data[pos + 4:pos + 2 + length]
        if marker == 0xFF90:   # SOT: the main header ends
            break
        if length < 2 or len(seg) < length - 2:
            raise Undecodable(f"HTJ2K marker {marker:#06x} with a bad length")
        if marker == 0xFF51:
            ncomp = struct.unpack_from(">H", seg, 34)[0] if len(seg) >= 36 else 0
            tiles = struct.unpack_from(">II", seg, 18) if len(seg) >= 26 else (0, 0)
            subs = [seg[36 + 3 * k + b] for k in range(ncomp) for b in (1, 2) if 38 + 3 * k < len(seg)]
            if length != 38 + 3 * ncomp or not ncomp or 0 in tiles or 0 in subs:
                raise Undecodable("HTJ2K SIZ with a zero tile size, sub-sampling or component count")
            x, y, _, _, tx, ty, ox, oy = struct.unpack_from(">8I", seg, 2)
            ntiles = -(-max(x - ox, 0) // tx) * -(-max(y - oy, 0) // ty)
        elif marker == 0xFF52 and len(seg) >= 10:
            levels = seg[5]
            if levels > 32 or seg[6] > 8 or seg[7] > 8 or seg[6] + seg[7] > 8:
                raise Undecodable("HTJ2K COD with impossible decomposition levels or code-block size")
        elif marker == 0xFF5C and seg:
            style, bands = seg[0] & 0x1F, 3 * (levels or 0) + 1
            want = {0: 3 + bands, 1: 5, 2: 3 + 2 * bands}.get(style)
            steps = seg[1:] if style == 0 else [seg[k] for k in range(1, len(seg), 2)]
            if levels is None or length != want or any(v >> 3 == 31 for v in steps):
                raise Undecodable("HTJ2K QCD that does not fit its decomposition levels")
        elif marker in (0xFF53, 0xFF5D):   # COC, QCC: never written here, unchecked
            raise Undecodable(f"HTJ2K main header with a per-component marker ({marker:#06x})")
        seen.add(marker)
        pos += 2 + length
    if not {0xFF51, 0xFF52, 0xFF5C} <= seen:
        raise Undecodable("HTJ2K main header without SIZ, COD and QCD")
    while pos + 12 <= len(data) and data[pos:pos + 2] == b"\xff\x90":   # each tile-part must fit the data
        lsot, isot, psot = struct.unpack_from(">HHI", data, pos + 2)
        if lsot != 10 or isot >= ntiles or (psot and (psot < 14 or pos + psot > len(data))):
            raise Undecodable("HTJ2K tile-part header that does not fit the codestream")
        if not psot:
            break
        pos += psot
    return j2k_dims(data)


def jpegls_dims(data: bytes):
    """Image size from a JPEG-LS SOF55 marker."""
    i = data.find(b"\xff\xf7")
    if i < 0 or len(data) < i + 9:
        raise ValueError("no JPEG-LS frame header")
    y, x = struct.unpack_from(">HH", data, i + 5)
    return y, x


def lerc_dims(data: bytes):
    """Image size from a Lerc2 blob header."""
    if not data.startswith(b"Lerc2 ") or len(data) < 22:
        raise ValueError("not a Lerc2 blob")
    version = struct.unpack_from("<i", data, 6)[0]
    off = 14 if version >= 3 else 10   # v3+ adds a checksum
    rows, cols = struct.unpack_from("<ii", data, off)
    if version >= 4 and struct.unpack_from("<i", data, off + 8)[0] != 1:
        raise ValueError("LERC blob with several values per pixel (nDepth ≠ 1)")   # 6·10^6 made a 43 GB array
    return rows, cols


_WRAPPED_LERC_MAX = 1 << 28   # bytes a zstd-wrapped LERC blob may declare before it is unwrapped to be read


def lerc_wrapped_dims(data: bytes):
    """:func:`lerc_dims` of a Lerc2 blob as a TIFF strip or tile holds it: bare, or wrapped in deflate or zstd
    (the LercParameters tag), unwrapped just enough to read its header."""
    if data[:4] == b"\x28\xb5\x2f\xfd":
        size = zstd_content_size(data)
        if size is None:
            raise ValueError("zstd frame without a content size")
        if size > _WRAPPED_LERC_MAX:
            raise Undecodable(f"its zstd frame declares {size:,} bytes")
        import imagecodecs
        try:
            data = bytes(imagecodecs.zstd_decode(data, out=size))
        except Exception as exc:   # incomplete (the caller reads more) or damaged
            raise ValueError(f"zstd: {exc}") from None
    elif len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0:   # a zlib header
        import zlib
        try:
            data = zlib.decompressobj().decompress(data, 64)
        except zlib.error as exc:
            raise ValueError(f"deflate: {exc}") from None
    return lerc_dims(data)


def zstd_content_size(data: bytes):
    """The content size a zstd frame header declares (None if absent or not a zstd frame)."""
    if len(data) < 6 or data[:4] != b"\x28\xb5\x2f\xfd":
        return None
    fhd = data[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if size == 0 or len(data) < pos + size:
        return None
    value = int.from_bytes(data[pos:pos + size], "little")
    return value + 256 if size == 2 else value


class _Bits:
    """LSB-first bit reader (JPEG XL's bit order)."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def u(self, n: int) -> int:
        if self.pos + n > 8 * len(self.data):
            raise ValueError("JPEG XL size header is truncated")
        v = int.from_bytes(self.data, "little") >> self.pos & ((1 << n) - 1)
        self.pos += n
        return v

    def u32_size(self) -> int:
        return 1 + self.u((9, 13, 18, 30)[self.u(2)])


# x = y · num / den for a JPEG XL SizeHeader's ratio field 1..7
_JXL_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def _jxl_codestream(data: bytes) -> bytes:
    """The codestream's start: the data itself, or the first jxlc/jxlp box of a JPEG XL container."""
    if data.startswith(b"\xff\x0a"):
        return data
    if not data.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        raise ValueError("not a JPEG XL codestream or container")
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1 and pos + 16 <= len(data):
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        if kind == b"jxlc":
            return data[pos + head:]
        if kind == b"jxlp":
            return data[pos + head + 4:]   # after the part's index
        if size < head:
            break
        pos += size
    raise ValueError("no JPEG XL codestream box")


def jxl_dims(data: bytes):
    """Image size from a JPEG XL SizeHeader (bare codestream or container)."""
    data = _jxl_codestream(data)
    if not data.startswith(b"\xff\x0a"):
        raise ValueError("not a JPEG XL codestream")
    bits = _Bits(data[2:16])
    small = bits.u(1)
    y = 8 * (bits.u(5) + 1) if small else bits.u32_size()
    ratio = bits.u(3)
    if ratio:
        num, den = _JXL_RATIOS[ratio]
        x = y * num // den
    else:
        x = 8 * (bits.u(5) + 1) if small else bits.u32_size()
    return y, x


def jxr_dims(data: bytes):
    """Image size from a JPEG XR file (its IFD tags and the codestream's image header must agree) or a bare
    codestream (NDPI's tiles)."""
    if data.startswith(b"WMPHOTO\x00"):
        return _jxr_header_dims(data, 0)
    if len(data) < 8 or data[:4] != b"II\xbc\x01":
        raise ValueError("not a JPEG XR file")
    ifd = struct.unpack_from("<I", data, 4)[0]
    if len(data) < ifd + 2:
        raise ValueError("JPEG XR directory is truncated")
    count = struct.unpack_from("<H", data, ifd)[0]
    tags = {}
    for k in range(count):
        if len(data) < ifd + 14 + 12 * k:
            raise ValueError("JPEG XR directory is truncated")
        tag, _, _, value = struct.unpack_from("<HHII", data, ifd + 2 + 12 * k)
        tags[tag] = value
    dims = _jxr_header_dims(data, tags.get(0xBCC0, 0))   # at the image's offset
    if (tags.get(0xBC81), tags.get(0xBC80)) != dims:
        raise ValueError(f"JPEG XR directory and image header disagree on the size ({dims[0]}×{dims[1]})")
    return dims


# JPEG XR's OUTPUT_CLR_FMT and OUTPUT_BITDEPTH codes (ITU-T T.832). jxrlib crashed the process (SIGSEGV/SIGFPE)
# on a header edited to an undefined code, to YUV420/422 output, to the packed BD5/BD10/BD565 depths (exhaustive
# one-byte edits of grey uint8/uint16/float32 and RGB streams), or to a reserved internal colour format in the
# image plane header: refused (streams from imagecodecs and from microscopes use none of them).
_JXR_COLOURS = frozenset((0, 3, 4, 5, 6, 7, 8))
_JXR_DEPTHS = frozenset((0, 1, 2, 3, 4, 6, 7, 15))


def _jxr_header_dims(data: bytes, i: int):
    if len(data) < i + 20 or data[i:i + 8] != b"WMPHOTO\x00":
        raise ValueError("no JPEG XR image header")
    short = data[i + 10] & 0x80   # SHORT_HEADER_FLAG: 16-bit sizes
    if data[i + 11] >> 4 not in _JXR_COLOURS or data[i + 11] & 15 not in _JXR_DEPTHS:
        raise Undecodable(f"JPEG XR image header with an unsupported output format (byte {data[i + 11]:#04x})")
    plane = i + (16 if short else 20)   # without tiling or windowing, the image plane header follows the size
    if not data[i + 9] & 0x80 and not data[i + 10] & 0x20 and len(data) > plane and (
            data[plane] >> 5 in (5, 7) or data[plane] & 15 > 3):
        raise Undecodable(f"JPEG XR image plane header with a reserved colour format (byte {data[plane]:#04x})")
    if short:
        w, h = struct.unpack_from(">HH", data, i + 12)
    else:
        w, h = struct.unpack_from(">II", data, i + 12)
    return h + 1, w + 1


def jpeg_dims(data: bytes):
    """Image size from a JPEG's frame header (SOFn), walking the marker segments from SOI."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG stream")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("JPEG marker expected")
        marker = data[i + 1]
        if marker == 0xFF:   # fill byte
            i += 1
            continue
        length = struct.unpack_from(">H", data, i + 2)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                break
            return struct.unpack_from(">HH", data, i + 5)
        i += 2 + length
    raise ValueError("no JPEG frame header")


def png_dims(data: bytes):
    """Image size from a PNG's IHDR chunk."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    w, h = struct.unpack_from(">II", data, 16)
    return h, w
