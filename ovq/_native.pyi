"""Type stub of ``ovq._native``, the C++ kernels (see docs/kernels.md).

Low-level: operands are described by ``ovq.kernels._layout.plan`` (``flat`` 1-D view
from the lowest address, ``koff`` int64 offsets of the K kept indices, ``rstrides``
int64 element strides of the ``rshape`` box). ``dtype_code``: 0 float32, 1 float16,
2 bfloat16 (2-byte types passed as uint16 views). ``itype``: 0 int8, 1 uint8, 2 int16,
3 uint16, 4 int32. Kernels release the GIL; bounds are checked before any access.
Use ``ovq.kernels`` instead of calling these directly.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

ABI_VERSION: int

def build_info() -> dict[str, Any]: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def simd_enabled() -> bool: ...
def set_simd(enabled: bool) -> None: ...
def minmax(flat: np.ndarray, dtype_code: int, koff: npt.NDArray[np.int64],
           rstrides: npt.NDArray[np.int64], rshape: npt.NDArray[np.int64]
           ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], bool]: ...
def moments(flat: np.ndarray, dtype_code: int, koff: npt.NDArray[np.int64],
            rstrides: npt.NDArray[np.int64], rshape: npt.NDArray[np.int64]
            ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32],
                       npt.NDArray[np.float64], npt.NDArray[np.float64], bool]: ...
def quantile(flat: np.ndarray, dtype_code: int, koff: npt.NDArray[np.int64],
             rstrides: npt.NDArray[np.int64], rshape: npt.NDArray[np.int64],
             q: npt.NDArray[np.float64], absolute: bool
             ) -> tuple[npt.NDArray[np.float64], bool]: ...
def histogram(flat: np.ndarray, dtype_code: int, koff: npt.NDArray[np.int64],
              rstrides: npt.NDArray[np.int64], rshape: npt.NDArray[np.int64],
              lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64], bins: int,
              absolute: bool) -> tuple[npt.NDArray[np.int64], bool]: ...
def quant_error(xflat: np.ndarray, dtype_code: int, xkoff: npt.NDArray[np.int64],
                xrstrides: npt.NDArray[np.int64], yflat: np.ndarray,
                ykoff: npt.NDArray[np.int64], yrstrides: npt.NDArray[np.int64],
                rshape: npt.NDArray[np.int64]
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], bool]: ...
def fake_quantize(xflat: np.ndarray, dtype_code: int, xkoff: npt.NDArray[np.int64],
                  xrstrides: npt.NDArray[np.int64], oflat: npt.NDArray[np.float32],
                  okoff: npt.NDArray[np.int64], orstrides: npt.NDArray[np.int64],
                  rshape: npt.NDArray[np.int64], consts: npt.NDArray[np.float32],
                  flavor: int) -> None: ...
def quantize(xflat: np.ndarray, dtype_code: int, xkoff: npt.NDArray[np.int64],
             xrstrides: npt.NDArray[np.int64], oflat: np.ndarray, itype: int,
             okoff: npt.NDArray[np.int64], orstrides: npt.NDArray[np.int64],
             rshape: npt.NDArray[np.int64], consts: npt.NDArray[np.float32], levels: int,
             offset: int) -> bool: ...
def dequantize(qflat: np.ndarray, itype: int, qkoff: npt.NDArray[np.int64],
               qrstrides: npt.NDArray[np.int64], oflat: npt.NDArray[np.float32],
               okoff: npt.NDArray[np.int64], orstrides: npt.NDArray[np.int64],
               rshape: npt.NDArray[np.int64], scale: npt.NDArray[np.float32],
               zero_point: npt.NDArray[np.float32]) -> None: ...
