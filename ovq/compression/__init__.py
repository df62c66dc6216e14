"""Weight-only compression (``ovq.compress_weights``, ``ovq compress``).

Data-free INT8 / INT4 compression of MatMul, embedding and convolution weights into
OpenVINO's decompression subgraph, ``nncf.compress_weights``-compatible. See
``docs/compress.md``.
"""

from ovq.compression.compress import CompressedLayer, CompressionReport, compress_graph, compress_weights
from ovq.compression.options import (
    BackupMode,
    CompressionOptions,
    CompressWeightsMode,
    GroupSizeFallbackMode,
    SensitivityMetric,
)

__all__ = [
    "BackupMode",
    "CompressWeightsMode",
    "CompressedLayer",
    "CompressionOptions",
    "CompressionReport",
    "GroupSizeFallbackMode",
    "SensitivityMetric",
    "compress_graph",
    "compress_weights",
]
