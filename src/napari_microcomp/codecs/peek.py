"""What a classical payload's own codestream declares (image size, content size), read without decoding:
checked before a native decoder runs, because it allocates whatever its codestream says."""
import struct


def j2k_dims(data: bytes):
    """Image size from a JPEG 2000 codestream's SIZ marker (inside a JP2 file or bare)."""
    i = data.find(b"\xff\x4f\xff\x51")
    if i < 0 or len(data) < i + 24:
        raise ValueError("no JPEG 2000 SIZ marker")
    x, y, x0, y0 = struct.unpack_from(">IIII", data, i + 8)
    return y - y0, x - x0


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
