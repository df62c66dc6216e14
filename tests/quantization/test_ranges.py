"""The range rules of ovq.quantization.ranges (quantization-algorithms.md §4–6)."""

from __future__ import annotations

import numpy as np
import pytest

from ovq.quantization.ranges import (
    NARROW_RANGE_WIDENING,
    activation_range,
    half_range_factor,
    per_channel_fq_range,
    weight_range,
    zero_filter,
)
from ovq.quantization.records import QConfig
from ovq.quantization.statistics import TensorStats

W_SYM = QConfig("q8_w_sym", 8, "symmetric", -127, 127, "perchannel")
W_SYM_256 = QConfig("q8_w", 8, "symmetric", -128, 127, "perchannel")
W_ASYM = QConfig("q8_w_asym", 8, "asymmetric", -128, 127, "perchannel")
A_SYM = QConfig("q8_a", 8, "symmetric", -128, 127)
A_ASYM = QConfig("q8_a", 8, "asymmetric", -128, 127)


def test_zero_range_channels():
    w = np.zeros((4, 8), np.float32)
    w[1] = np.linspace(-1, 1, 8)
    lo, hi = weight_range(w, (0,), W_SYM, per_channel=True)
    assert (hi > 0).all() and hi[0, 0] == pytest.approx(0.01)  # zero filter: 1 % of max
    lo, hi = weight_range(w, (0,), W_ASYM, per_channel=True)
    assert (hi - lo > 1e-3).all()


def test_weight_rules_from_doc():
    # asymmetric: 0 becomes exactly a level
    w = np.array([[-22.7355, 14.668]], np.float32)
    lo, hi = weight_range(w, (0,), W_ASYM, per_channel=True)
    zp = -lo / ((hi - lo) / 255)
    assert abs(zp[0, 0] - round(zp[0, 0])) < 1e-3 and lo[0, 0] <= -22.7355 and hi[0, 0] >= 14.668
    lo, hi = weight_range(np.array([[-1.0, 0.5]], np.float32), (0,), W_SYM_256, per_channel=True)
    assert lo[0, 0] == pytest.approx(-256 / 254) and hi[0, 0] == 1.0
    lo, hi = weight_range(np.array([[-1.0, 0.5]], np.float32), (0,), W_SYM, per_channel=True)
    assert hi[0, 0] * half_range_factor(W_SYM.levels) == pytest.approx(2.0)


def test_zero_filter_and_widening():
    np.testing.assert_allclose(zero_filter(np.array([0.0, 2.0])), [0.02, 2.0])
    assert zero_filter(np.array(0.0)) == pytest.approx(8e-5)
    lo, hi = activation_range(1.0, 1.0, A_ASYM)  # a constant tensor still gets a range with 0 in it
    assert lo <= 0 and hi >= 1.0 + NARROW_RANGE_WIDENING * 0.99


def test_activation_range_signs():
    assert activation_range(0.0, 2.0, A_SYM) == (0.0, 2.0)
    lo, hi = activation_range(-1.0, 2.0, A_SYM)
    assert hi == 2.0 and lo == pytest.approx(-2.0 * 128 / 127)



def test_per_channel_activation_range_has_one_sign_and_the_zero_filter():
    st = TensorStats(channel_min=np.array([-1.0, 0.0, 0.0]), channel_max=np.array([1.0, 3.0, 0.0]))
    lo, hi = per_channel_fq_range(st, A_SYM)
    assert (lo < 0).all()  # one signedness for the whole tensor
    assert hi[2] == pytest.approx(0.03)  # a dead channel gets 1 % of the largest range
