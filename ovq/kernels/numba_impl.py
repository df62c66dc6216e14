"""numba implementations of the kernels, same signatures as :mod:`ovq.kernels.reference`."""
