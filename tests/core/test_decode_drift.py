"""Learned streams on another CPU: float rounding drift is accepted (with a warning), entropy desync is refused.

The drift is simulated on the shipped transmitted-light weights: a tiny offset on the synthesis transform's
output stands in for another CPU's rounding (the latents are untouched), a change of the hyper-synthesis
output for a decoder whose entropy parameters differ (the symbols desynchronise). oneDNN switched off is a
real second arithmetic on this machine.
"""
import warnings
from contextlib import contextmanager

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp import container  # noqa: E402
from napari_microcomp.codecs import decode, get_codec  # noqa: E402
from napari_microcomp.errors import DecodeDriftWarning, StreamError  # noqa: E402
from napari_microcomp.weights.load import get_model  # noqa: E402

CASES = [("mbt2018-mean-vbr", 4), ("mbt2018", 4), ("mbt2018-mean-vbr3d", 4)]


@pytest.fixture(scope="module")
def image(shared_data):
    import imageio.v3 as iio

    a = iio.imread(shared_data / "isl_phase_to_fluorescence" / "z_depth-6_channel-PHASE_CONTRAST.png")
    return np.ascontiguousarray(a[256:384, 384:512])


def _input(arch, image):
    return np.stack([image, image[::-1], image[:, ::-1]]) if arch.endswith("3d") else image


@contextmanager
def _hooked(module, fn):
    calls = []

    def hook(mod, inputs, out):
        calls.append(1)
        return fn(out)

    h = module.register_forward_hook(hook)
    try:
        yield calls
    finally:
        h.remove()


def _decode_recording(data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = decode(data)
    return out, [w.message for w in caught if isinstance(w.message, DecodeDriftWarning)]


@pytest.mark.parametrize("arch,q", CASES)
def test_same_machine_is_exact_and_records_symbols(image, arch, q):
    a = _input(arch, image)
    data = get_codec(arch, quality=q, weights="transmitted").encode(a)
    header, _ = container.unpack(data)
    assert isinstance(header.check.get("symbols"), int)
    out, drift = _decode_recording(data)
    assert drift == [] and container.array_crc32(out) == header.check["crc32"]


@pytest.mark.parametrize("arch,q", CASES)
def test_rounding_drift_is_returned_with_a_warning(image, arch, q):
    a = _input(arch, image)
    data = get_codec(arch, quality=q, weights="transmitted").encode(a)
    ref = decode(data)
    model = get_model(arch, q, "transmitted").model
    with _hooked(model.g_s, lambda out: out + 4e-5) as calls:   # ~2.6 units of 16 bits: rounding-sized
        out, drift = _decode_recording(data)
    assert calls, "the decoder did not use the hooked model"
    diff = np.abs(out.astype(np.int64) - ref.astype(np.int64))
    assert diff.any() and diff.max() <= 4      # it did drift, and only by rounding
    assert len(drift) == 1 and "exactly the latents" in str(drift[0])


@contextmanager
def _shifted_scale_table(model, factor):
    """A decoder whose scale indexes come out differently: the symbols desynchronise."""
    table = model.gaussian_conditional.scale_table
    keep = table.clone()
    table.mul_(factor)
    try:
        yield
    finally:
        table.copy_(keep)


@pytest.mark.parametrize("arch,q", [c for c in CASES if not c[0].endswith("3d")])
def test_entropy_desync_is_refused(image, arch, q):
    data = get_codec(arch, quality=q, weights="transmitted").encode(image)
    model = get_model(arch, q, "transmitted").model
    # refused either by the symbol/reconstruction checksum or, when the desynchronised latents blow up the
    # synthesis first, by the NaN/Inf check: never returned
    with _shifted_scale_table(model, 1.3), pytest.raises(StreamError, match="checksum|NaN"):
        decode(data)
    assert np.array_equal(decode(data), decode(data))   # restored


@pytest.mark.parametrize("arch,q", CASES)
def test_streams_record_their_entropy_arithmetic(image, arch, q):
    """New streams compute entropy parameters in float64; older (float32) streams still decode as written."""
    a = _input(arch, image)
    data = get_codec(arch, quality=q, weights="transmitted").encode(a)
    assert container.unpack(data)[0].codec["ep"] == 64
    old = get_codec(arch, quality=q, weights="transmitted", ep=32).encode(a)
    header, payloads = container.unpack(old)
    del header.codec["ep"]   # as written before the key existed
    out = decode(container.pack(header, payloads))
    assert container.array_crc32(out) == header.check["crc32"]
    with pytest.raises(Exception, match="ep"):
        get_codec(arch, quality=q, ep=16)


def test_without_the_symbol_checksum_drift_is_still_refused(image):
    """Streams written before the symbol checksum existed keep the strict check."""
    data = get_codec("mbt2018-mean-vbr", quality=4, weights="transmitted").encode(image)
    header, payloads = container.unpack(data)
    del header.check["symbols"]
    old = container.pack(header, payloads)
    model = get_model("mbt2018-mean-vbr", 4, "transmitted").model
    with _hooked(model.g_s, lambda out: out + 4e-5), pytest.raises(StreamError, match="checksum"):
        decode(old)


def test_a_second_arithmetic_never_returns_a_wrong_image(image):
    """oneDNN off: another set of float kernels on the same machine. Either bit-exact, or the latents were
    recovered exactly (warned, off by rounding), or refused; never a silently different image."""
    data = get_codec("mbt2018-mean-vbr", quality=4, weights="transmitted").encode(image)
    ref = decode(data)
    prev = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        out, drift = _decode_recording(data)
    except StreamError:
        return
    finally:
        torch.backends.mkldnn.enabled = prev
    diff = np.abs(out.astype(np.int64) - ref.astype(np.int64))
    assert diff.max() <= 1 and (bool(drift) == bool(diff.any()))
