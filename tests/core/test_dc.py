"""Per-tile intensity offsets of learned streams (codecs/dc.py): the decoder's mean error is removed, never added,
and a stream whose offsets do not fit its tiles is refused."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp import container  # noqa: E402
from napari_microcomp.codecs import decode, get_codec, learned  # noqa: E402
from napari_microcomp.errors import StreamError  # noqa: E402


def nuclei(shape=(300, 520), seed=0) -> np.ndarray:
    """Bright blobs on a dark, slightly noisy background: fluorescence as the transmitted weights see it rarely."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = np.zeros(shape)
    for y, x, r in zip(rng.uniform(0, shape[0], 40), rng.uniform(0, shape[1], 40), rng.uniform(6, 14, 40)):
        img += 3000 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * r ** 2))
    return np.clip(img + 100 + rng.normal(0, 8, shape), 0, 65535).astype(np.uint16)


def test_offsets_remove_the_mean_error_and_never_raise_the_mse(monkeypatch):
    a = nuclei()
    codec = get_codec("bmshj2018-factorized-relu", quality=4, weights="transmitted", tile=256)
    data = codec.encode(a)
    header = container.read_header(data)[0]
    with_dc = decode(data).astype(np.float64)
    monkeypatch.setattr(learned, "dc_offset", lambda *args: 0)
    plain = decode(codec.encode(a)).astype(np.float64)
    grid = 2 * 3   # 300×520 in tiles of 256
    assert len(header.meta["dc"]) == grid and any(header.meta["dc"])
    err, err0 = with_dc - a, plain - a
    assert np.mean(err ** 2) < np.mean(err0 ** 2)
    assert abs(err.mean()) < abs(err0.mean())
    for y in (slice(0, 256), slice(256, None)):   # no tile is made worse
        for x in (slice(0, 256), slice(256, 512), slice(512, None)):
            assert np.mean(err[y, x] ** 2) <= np.mean(err0[y, x] ** 2) + 1e-9


@pytest.mark.parametrize("dc", [[1] * 5, [1] * 7, [0.5] * 6, [True] * 6, [70000] * 6, "1"])
def test_offsets_that_do_not_fit_the_tiles_are_refused(dc):
    data = get_codec("bmshj2018-factorized-relu", quality=2, weights="transmitted", tile=256).encode(nuclei())
    header, payloads = container.unpack(data)
    header.meta["dc"] = dc
    with pytest.raises(StreamError, match="offsets"):
        decode(container.pack(header, payloads))


def test_a_caller_cannot_set_the_offsets_through_meta():
    a = nuclei((64, 64))
    data = get_codec("bmshj2018-factorized-relu", quality=2, weights="transmitted").encode(a, meta={"dc": [9999]})
    assert container.read_header(data)[0].meta.get("dc") != [9999]
