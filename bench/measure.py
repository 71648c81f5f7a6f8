"""What every benchmark reports beside its numbers: peak memory and the machine."""

from __future__ import annotations

import os
import platform
import resource
import sys


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (ru_maxrss is KiB on Linux,
    bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> None:
    """Start this process's peak resident memory again from its current size (Linux:
    ``/proc/self/clear_refs``); a forked process inherits its parent's peak otherwise.
    Elsewhere a no-op."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def peak_rss_since_reset_mb() -> float:
    """Peak resident memory since :func:`reset_peak_rss` (Linux ``VmHWM``), in MB; else
    :func:`peak_rss_mb`."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def machine() -> dict[str, object]:
    """The machine a benchmark ran on."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def target(
    metrics: dict[str, float],
    key: str,
    *,
    what: str,
    at_least: float | None = None,
    at_most: float | None = None,
) -> dict[str, object]:
    """A quality target on ``metrics[key]`` (``at_least`` or ``at_most`` a bound): the value
    with its 95 % interval (``key_ci_low``/``_ci_high``), the target, whether the value meets
    it and whether the whole interval does (``met_with_confidence``)."""
    value = metrics.get(key, float("nan"))
    low = metrics.get(f"{key}_ci_low", float("nan"))
    high = metrics.get(f"{key}_ci_high", float("nan"))
    if (at_least is None) == (at_most is None):
        raise ValueError(f"target {key!r}: give exactly one of at_least and at_most")
    if at_least is not None:
        bound, met, sure = f">= {at_least}", value >= at_least, low >= at_least
    else:
        assert at_most is not None
        bound, met, sure = f"<= {at_most}", value <= at_most, high <= at_most
    return {
        "what": what,
        "value": value,
        "ci": [low, high],
        "target": bound,
        "met": bool(met),
        "met_with_confidence": bool(sure),
    }
