"""numpy reference kernels: the executable specification of every kernel."""
