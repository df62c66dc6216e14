"""The files a sharded quantize job's tasks hand each other through its staging folder.

A sharded job (``shards = K``) runs as K statistics tasks and one finishing task
(:mod:`ovq.batch.driver` orchestrates them). Each statistics task writes its
:class:`~ovq.quantization.shards.PartialStatistics` to ``statistics-<k>-of-<K>.pkl``;
the driver reads the K files, merges them (:func:`merge_files`, numpy only) into
``statistics.pkl``, and the finishing task quantizes with the merged statistics instead
of a statistics pass (:func:`merged_collector`). The files hold statistics records only
(per-sample minima/maxima, per-channel means, ...: kilobytes to a few MB), never weights
or samples; they live in the staging folder, so they are removed with it.

They are pickles written and read by the same ovq version (checked), inside the job's
own staging folder; the Ray engine needs that folder on a filesystem every node sees,
as for the outputs.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovq.errors import OptionError

__all__ = ["MergedStatistics", "merge_files", "merged_collector", "partial_path", "read_partial", "write_partial"]

MERGED_NAME = "statistics.pkl"


@dataclass
class MergedStatistics:
    """The merged statistics of a sharded job and the observation keys they cover."""

    keys: tuple[Hashable, ...]
    stats: dict[Hashable, Any]
    report: Any
    shards: int


def partial_path(staging: Path, index: int, count: int) -> Path:
    """Where statistics task ``index`` of ``count`` writes its partial statistics."""
    return Path(staging) / f"statistics-{index + 1}-of-{count}.pkl"


def _write(path: Path, record: Any) -> None:
    import ovq

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump((ovq.__version__, record), f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read(path: Path, what: type) -> Any:
    import ovq

    try:
        with open(path, "rb") as f:
            version, record = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise OptionError(f"shards: cannot read {path}: {exc}") from None
    if version != ovq.__version__ or not isinstance(record, what):
        raise OptionError(f"shards: {path} was written by ovq {version}, not {ovq.__version__}")
    return record


def write_partial(path: Path, partial: Any) -> None:
    """Write one task's :class:`~ovq.quantization.shards.PartialStatistics` (atomically)."""
    _write(path, partial)


def read_partial(path: Path) -> Any:
    """Read what :func:`write_partial` wrote."""
    from ovq.quantization.shards import PartialStatistics

    return _read(path, PartialStatistics)


def merge_files(paths: list[Path], out: Path) -> MergedStatistics:
    """Merge the partial statistics in ``paths`` (every slice of one job) into ``out``."""
    from ovq.quantization.shards import merge_partial_statistics

    parts = [read_partial(p) for p in paths]
    stats, report = merge_partial_statistics(parts)
    merged = MergedStatistics(tuple(o.key for o in parts[0].observations), stats, report, len(parts))
    _write(out, merged)
    return merged


def merged_collector(path: Path) -> Any:
    """A statistics hook for :class:`~ovq.quantization.phases.QuantizeSession` that
    returns the merged statistics in ``path``, after checking they cover exactly the
    observations this session asks for (same model, options and placement as the slices).
    """
    merged = _read(path, MergedStatistics)

    def collect(state: Any, observations: list[Any]) -> tuple[dict[Hashable, Any], Any]:
        keys = tuple(o.key for o in observations)
        if keys != merged.keys:
            raise OptionError(f"shards: the merged statistics in {path} cover other tensors than this run "
                              "observes (the statistics tasks ran another model or other options)")
        return dict(merged.stats), merged.report

    return collect
