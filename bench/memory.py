"""Resident memory of this process for the benches (Linux /proc): the current RSS, and
the peak (VmHWM) since the last reset."""

from __future__ import annotations

import os
import resource


def rss_mb() -> float:
    """Resident set size now, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> None:
    """Reset VmHWM (Linux: ``5`` into /proc/self/clear_refs) so the peak covers only what follows."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_mb() -> float:
    """Peak resident set size since the last :func:`reset_peak`, MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
