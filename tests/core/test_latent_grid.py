"""Learned streams pad tiles to 16, not 64: fewer bits for sizes off the 64 grid, old streams still decode."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from napari_microcomp import container, metrics  # noqa: E402
from napari_microcomp.codecs import decode, get_codec  # noqa: E402
from napari_microcomp.errors import CodecError, StreamError  # noqa: E402

# one of each coding path: mean-scale VBR, context model, factorized, scale-only VBR, cheng2020
CASES = [("mbt2018-mean-vbr", 4), ("mbt2018", 4), ("bmshj2018-factorized", 4),
         ("bmshj2018-hyperprior-vbr", 4), ("cheng2020-anchor", 4)]


@pytest.fixture(scope="module")
def image(shared_data):
    import imageio.v3 as iio

    a = iio.imread(shared_data / "isl_phase_to_fluorescence" / "z_depth-6_channel-PHASE_CONTRAST.png")
    return np.ascontiguousarray(a[200:336, 300:500])   # 136 × 200: neither a multiple of 64 nor of 16


def _exact(data):
    out = decode(data)
    assert container.array_crc32(out) == container.unpack(data)[0].check["crc32"]
    return out


@pytest.mark.parametrize("arch,q", CASES)
def test_tiles_padded_to_16_cost_fewer_bits_for_the_same_image(image, arch, q):
    new = get_codec(arch, quality=q, weights="transmitted", threads=1).encode(image)
    old = get_codec(arch, quality=q, weights="transmitted", threads=1, grid=64).encode(image)
    assert container.unpack(new)[0].codec["grid"] == 16
    a, b = _exact(new), _exact(old)
    # 144 × 208 coded instead of 192 × 256: the padding cost about as much as content did
    assert len(new) < 0.85 * len(old)
    assert metrics.psnr(image, a) > metrics.psnr(image, b) - 0.2


@pytest.mark.parametrize("arch,q", [CASES[0], CASES[1]])
def test_streams_without_a_grid_decode_as_padded_to_64(image, arch, q):
    old = get_codec(arch, quality=q, weights="transmitted", threads=1, grid=64).encode(image)
    header, payloads = container.unpack(old)
    del header.codec["grid"]   # as written before the key existed
    _exact(container.pack(header, payloads))
    # and a new stream stripped of its grid is refused, never decoded on the wrong grid
    header, payloads = container.unpack(get_codec(arch, quality=q, weights="transmitted", threads=1).encode(image))
    del header.codec["grid"]
    with pytest.raises(StreamError):
        decode(container.pack(header, payloads))


def test_edge_tiles_and_refinement_on_the_16_grid(image):
    # tiles of 128: a 128 × 72 and an 8 × 72 edge tile, whose latents are 1 × 5 (padded to 4 × 8 for h_a)
    for arch in ("mbt2018-mean-vbr", "mbt2018"):
        data = get_codec(arch, quality=2, weights="transmitted", threads=1, tile=128, refine=3).encode(image)
        assert len(container.unpack(data)[1]) == 4
        assert metrics.psnr(image, _exact(data)) > 25


@pytest.mark.parametrize("arch", ["mbt2018", "cheng2020-anchor", "mbt2018-mean-vbr"])
def test_thin_images_whose_latent_is_one_or_two_wide(image, arch):
    # 20 px wide: a latent 2 wide, whose wavefronts (context models) are partly empty; 8-row edge tile: 1 × 2
    thin = np.ascontiguousarray(image[:, :20])
    data = get_codec(arch, quality=2, weights="transmitted", threads=1, tile=128).encode(thin)
    assert _exact(data).shape == thin.shape
    assert _exact(get_codec(arch, quality=2, weights="transmitted", threads=1).encode(thin[:, :9])).shape == (136, 9)


def test_an_unknown_grid_is_refused():
    with pytest.raises(CodecError, match="grid"):
        get_codec("mbt2018-mean-vbr", quality=4, grid=32)
    with pytest.raises(CodecError, match="grid"):
        get_codec("mbt2018-mean-vbr", quality=4, grid=True)


def test_the_3d_codec_pads_y_x_to_16_too(image):
    vol = np.stack([image, image[::-1], image[:, ::-1]])   # 3 × 136 × 200
    new = get_codec("mbt2018-mean-vbr3d", quality=4, weights="transmitted", threads=1).encode(vol)
    old = get_codec("mbt2018-mean-vbr3d", quality=4, weights="transmitted", threads=1, grid=64).encode(vol)
    assert container.unpack(new)[0].codec["grid"] == 16
    _exact(new)
    ref = _exact(old)
    assert len(new) < 0.85 * len(old)
    header, payloads = container.unpack(old)
    del header.codec["grid"]   # as written before the key existed
    assert np.array_equal(_exact(container.pack(header, payloads)), ref)
    with pytest.raises(CodecError, match="grid"):   # the factorized 3D model has no latent grid to pad
        get_codec("factorized3d", quality=4, grid=16)
