"""Constant payloads backed by a memory-mapped ``.bin``."""

from __future__ import annotations

import numpy as np

from ovq.ir.constants import BinFile, ConstData
from ovq.ir.element_types import element_type


def _bin(tmp_path, values: np.ndarray) -> BinFile:
    path = tmp_path / "w.bin"
    path.write_bytes(values.tobytes())
    return BinFile(path)


def test_constants_read_the_same_after_drop_pages(tmp_path):
    values = np.random.default_rng(3).standard_normal(3 * 4096).astype(np.float32)  # several pages
    bin_file = _bin(tmp_path, values)
    a = ConstData(element_type("f32"), (3, 4096), bin=bin_file, offset=0, size=values.nbytes)
    b = ConstData(element_type("f32"), (2048,), bin=bin_file, offset=4096 * 4, size=2048 * 4)
    before = a.value()  # maps the file; this view must survive the call
    bin_file.drop_pages()
    np.testing.assert_array_equal(before, values.reshape(3, 4096))
    np.testing.assert_array_equal(a.value(), values.reshape(3, 4096))
    np.testing.assert_array_equal(b.value(), values[4096:6144])
    bin_file.drop_pages()  # repeatable
    np.testing.assert_array_equal(b.value(), values[4096:6144])
    bin_file.close()


def test_drop_pages_before_mapping_is_a_no_op(tmp_path):
    values = np.arange(10, dtype=np.int32)
    bin_file = _bin(tmp_path, values)
    bin_file.drop_pages()
    assert bin_file._map is None
    np.testing.assert_array_equal(ConstData(element_type("i32"), (10,), bin=bin_file, size=40).value(), values)
    bin_file.close()
