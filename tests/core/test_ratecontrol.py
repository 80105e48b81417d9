import numpy as np
import pytest

from helpers import smooth_image
from napari_microcomp import metrics
from napari_microcomp.api import compress_array
from napari_microcomp.errors import CodecError
from napari_microcomp.ratecontrol import compress_to_target, parse_target


@pytest.fixture(scope="module")
def image():
    return smooth_image((128, 128), np.uint16, seed=21)


@pytest.mark.parametrize("codec", ["jpeg2k", "jpegxl", "lerc"])
def test_psnr_target_met_with_reported_value(image, codec):
    r = compress_to_target(image, codec, "psnr=45")
    assert r.met and r.achieved >= 45
    from napari_microcomp.codecs import decode
    assert r.achieved == pytest.approx(metrics.psnr(image, decode(r.data)))


def test_bpp_and_cr_targets(image):
    r = compress_to_target(image, "jpeg2k", "bpp=1.0")
    assert r.met and metrics.bpp(image, len(r.data)) <= 1.0
    assert metrics.bpp(image, len(r.data)) > 0.7  # close to the budget, not a tiny file
    r = compress_to_target(image, "jpegxl", "cr=20")
    assert r.met and metrics.compression_ratio(image, len(r.data)) >= 20


def test_unreachable_target_reports_not_met(image):
    r = compress_to_target(image, "jpegxr", "psnr=500")
    assert not r.met and r.achieved < 500


def test_api_target(image):
    res = compress_array(image, "jpegxl", target="ssim=0.95", with_ms_ssim=False)
    assert res.target["met"] and res.metrics["ssim"] >= 0.95


@pytest.mark.parametrize("text", ["psnr", "psnr=x", "foo=3", "bpp=-1", "ssim=1.5", "psnr=nan"])
def test_bad_targets(text):
    with pytest.raises(CodecError):
        parse_target(text)
