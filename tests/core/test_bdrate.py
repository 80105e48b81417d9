"""Bjøntegaard delta metrics against a published case and exact constructions."""
import math

import numpy as np
import pytest

from napari_microcomp.bdrate import bd_psnr, bd_rate
from napari_microcomp.errors import InputError

# x264 vs x265 on one sequence, as published with the widely used VCEG-M33 cubic implementation
# (videonerd.website "How to compute BD-rate": BD_RATE(x265, x264) = -12.098 %).
X265 = (np.array([8.914, 13.330, 17.880, 22.990]), np.array([37.02, 38.37, 39.42, 40.35]))
X264 = (np.array([9.525, 14.270, 19.113, 24.393]), np.array([37.73, 39.07, 40.07, 40.95]))


def test_published_cubic_case():
    assert bd_rate(*X265, *X264, method="cubic") == pytest.approx(-12.098, abs=5e-4)


def test_pchip_close_to_cubic_on_smooth_curves():
    assert bd_rate(*X265, *X264, method="pchip") == pytest.approx(-12.1, abs=1.0)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_scaled_rates_give_exact_bd_rate(method):
    rate = np.array([0.1, 0.25, 0.6, 1.3, 2.2])
    psnr = np.array([30.0, 33.5, 37.0, 40.2, 42.0])
    assert bd_rate(rate, psnr, rate * 0.8, psnr, method=method) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(rate, psnr, rate, psnr, method=method) == pytest.approx(0.0, abs=1e-9)
    # the shuffled order of points does not matter
    perm = np.array([3, 0, 4, 1, 2])
    assert bd_rate(rate, psnr, rate[perm] * 1.1, psnr[perm], method=method) == pytest.approx(10.0, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_shifted_psnr_gives_exact_bd_psnr(method):
    rate = np.array([0.1, 0.25, 0.6, 1.3])
    psnr = np.array([30.0, 33.5, 37.0, 40.2])
    assert bd_psnr(rate, psnr, rate, psnr + 0.75, method=method) == pytest.approx(0.75, abs=1e-9)
    # a linear-in-log-rate curve: shifting the rate by a factor k shifts PSNR by slope*log(k)
    lin = 3.0 * np.log(rate) + 40
    assert bd_psnr(rate, lin, rate * 2, lin, method=method) == pytest.approx(-3.0 * math.log(2), abs=1e-9)


def test_undefined_cases_are_nan_not_numbers():
    rate = [0.1, 0.2, 0.4]
    assert math.isnan(bd_rate(rate, [30, 31, 32], [1, 2, 4], [50, 51, 52]))     # no overlap
    assert math.isnan(bd_rate([0.1], [30], [0.2], [31]))                        # one point
    # a lossless point (PSNR inf) is ignored, not allowed to poison the fit
    assert bd_rate([0.1, 0.2, 0.4, 9.0], [30, 33, 36, math.inf],
                   [0.1, 0.2, 0.4], [30, 33, 36]) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InputError):
        bd_rate([1, 2], [30], [1, 2], [30, 31])
