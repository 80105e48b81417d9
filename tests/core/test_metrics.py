import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp import metrics
from napari_microcomp.errors import InputError


def test_psnr_known_value_and_data_range_modes():
    a = np.zeros((32, 32), np.uint16)
    a[0, 0] = 4000
    b = a.copy()
    b[5, 5] = 10  # MSE = 100 / 1024
    mse = 100 / 1024
    assert metrics.mse(a, b) == pytest.approx(mse)
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(4000 ** 2 / mse))               # image range
    assert metrics.psnr(a, b, "dtype") == pytest.approx(10 * np.log10(65535 ** 2 / mse))
    assert metrics.psnr(a, b, "bits") == pytest.approx(10 * np.log10(4095 ** 2 / mse))         # 12-bit
    assert metrics.psnr(a, b, 1000) == pytest.approx(10 * np.log10(1000 ** 2 / mse))
    assert metrics.psnr(a, a) == float("inf")


def test_gain_and_offset_errors_are_not_hidden():
    a = smooth_image((64, 64), np.uint16, bits=12).astype(np.float32)
    brighter = a * 1.2 + 100
    # a z-scored comparison would call these identical; ours must not
    assert metrics.psnr(a, brighter) < 30
    assert metrics.ssim(a, brighter) < 0.99
    assert metrics.pearson(a, brighter) == pytest.approx(1.0)


def test_ssim_identity_and_3d():
    a = smooth_image((8, 40, 40), np.uint16)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 3000, a.shape), 0, 65535).astype(np.uint16)
    assert 0 < metrics.ssim(a, noisy) < 0.99
    thin = a[:3]
    assert metrics.ssim(thin, thin) == pytest.approx(1.0)


def test_ms_ssim_small_images_nan_and_large_identity():
    assert np.isnan(metrics.ms_ssim(np.ones((64, 64)), np.ones((64, 64))))
    a = smooth_image((192, 192), np.uint16)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-5)


def test_ratio_and_bpp_use_whole_stream():
    a = np.zeros((10, 100, 100), np.uint16)
    assert metrics.compression_ratio(a, 2000) == pytest.approx(200000 / 2000)
    assert metrics.bpp(a, 2000) == pytest.approx(16000 / 100000)


def test_per_slice_uses_volume_range():
    a = smooth_image((4, 32, 32), np.uint16)
    b = a.copy()
    b[2] = b[2] // 2
    curves = metrics.per_slice(a, b)
    assert curves["psnr"][0] == float("inf") and np.isfinite(curves["psnr"][2])
    with pytest.raises(InputError):
        metrics.per_slice(a[0], b[0])


def test_mean_error_is_the_signed_shift_and_strips_agree(monkeypatch):
    a = smooth_image((64, 80), np.uint16)
    assert metrics.mean_error(a, a) == 0.0
    b = a.astype(np.int64) - 3
    b[0, 0] += 64 * 80                      # one pixel +5120 brighter: +1 on the mean
    assert metrics.mean_error(a, b) == pytest.approx(-2.0)
    assert metrics.mean_error(b, a) == pytest.approx(2.0)
    assert metrics.psnr(a, a.astype(np.int64) + 2) == metrics.psnr(a, a.astype(np.int64) - 2)   # PSNR: no sign
    monkeypatch.setattr(metrics, "STRIP_PX", 500)
    assert metrics.mean_error(a, b) == pytest.approx(-2.0)
    assert metrics.all_metrics(a, b, 100)["mean_error"] == pytest.approx(-2.0)


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="shapes differ"):
        metrics.psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_all_metrics_keys():
    a = smooth_image((200, 200), np.uint16)
    m = metrics.all_metrics(a, a, 1000)
    assert {"mse", "psnr", "ssim", "ms_ssim", "pearson_r", "compression_ratio", "bpp", "data_range"} <= set(m)


def test_big_images_are_scored_in_strips_with_the_same_numbers(monkeypatch):
    """Above STRIP_PX pixels the metrics work strip by strip (an image of 144 Mpx took 18.6 GB to score whole);
    each strip carries its window's halo, so the numbers are the whole-image ones up to float rounding."""
    from napari_microcomp import metrics as m

    rng = np.random.default_rng(3)

    def pair(shape):
        x = (np.cumsum(rng.normal(0, 20, shape), axis=-1) % 3000).astype(np.uint16)
        return x, (x.astype(np.int32) + rng.integers(-40, 40, shape)).clip(0, 65535).astype(np.uint16)

    for shape in [(300, 260), (13, 70, 64), (4, 60, 50)]:      # 2D, a 3D window, a thin stack slice-wise
        x, y = pair(shape)
        whole = {f: getattr(m, f)(x, y) for f in ("mse", "pearson", "ssim")}
        monkeypatch.setattr(m, "STRIP_PX", 1000)
        strips = {f: getattr(m, f)(x, y) for f in ("mse", "pearson", "ssim")}
        monkeypatch.undo()
        for f in whole:
            assert strips[f] == pytest.approx(whole[f], rel=1e-12, abs=1e-12), (shape, f)
    x, y = pair((420, 390))
    whole = m.ms_ssim(x, y)
    monkeypatch.setattr(m, "STRIP_PX", 5000)
    assert m.ms_ssim(x, y) == pytest.approx(whole, abs=1e-6)    # float32 maps, as pytorch-msssim's own


def test_classical_streams_are_the_same_when_their_float_work_goes_in_strips(monkeypatch):
    """The 16-bit stretch and float mapping ran whole in float64 (16 bytes per uint8 pixel, a 30000² image took
    over 9 GB); strip by strip they must give the very same streams and reconstructions."""
    from napari_microcomp import strips
    from napari_microcomp.codecs import decode, get_codec

    rng = np.random.default_rng(3)
    images = [(rng.random((70, 90)) * 200).astype(np.uint8), (rng.random((70, 90)) * 3000).astype(np.uint16),
              (rng.standard_normal((2, 70, 90)) * 1e3).astype(np.float32)]
    whole = [(get_codec("jpeg2k", quality=3).encode(a), get_codec("jpegxl", quality=3).encode(a)) for a in images]
    monkeypatch.setattr(strips, "STRIP_PX", 500)   # 5 rows a strip
    for a, want in zip(images, whole):
        got = (get_codec("jpeg2k", quality=3).encode(a), get_codec("jpegxl", quality=3).encode(a))
        assert got == want
        for stream in got:
            r = decode(stream)
            assert r.dtype == a.dtype and r.shape == a.shape
    x = rng.random((33, 7))
    assert np.array_equal(strips.map_rows(x, lambda b: np.rint(b * 1e4), np.uint16, strip_px=10),
                          np.rint(x * 1e4).astype(np.uint16))
