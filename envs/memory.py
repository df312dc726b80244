"""Keep freed memory mapped, so each episode build reuses the last one's pages.

An episode build allocates a few dozen arrays of megabytes (a 16,384-path block of 30 steps:
4 MB each) and frees them when the next block replaces them. glibc's allocator serves blocks
above its mmap threshold with fresh pages from the kernel and hands freed memory at the heap's
top back to it past the trim threshold, so every build page-faults all of its arrays in again:
about a third of an arena block's build and a fifth of its hedgers' stepping went to page faults
(measured on the benchmark case of bench/arena.py, 2-core machine: 57 ms a block without this,
38 ms with it).

:func:`keep_freed_memory` raises both thresholds (``mallopt``): allocations of up to 32 MiB
(mallopt(3)'s documented maximum on 64-bit, ``DEFAULT_MMAP_THRESHOLD_MAX``; older glibc
releases refuse more) come from the heap, and up to
:data:`TRIM_THRESHOLD` bytes of freed memory stay mapped for the next allocation. The cost is
a resident size that stays up to that much above the live data after a big build. Importing
``hedgearena.envs`` applies it on glibc systems; set the environment variable
``HEDGEARENA_MALLOC=system`` before the import to leave the allocator as it is (other systems
are left alone anyway).

:func:`check_episode_memory` refuses, before anything is allocated, an env whose blocks of
episodes could not fit in the machine's memory (a ``ValueError`` naming the paths, the steps and
the memory they would take, instead of numpy's ``MemoryError``).
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 32 * 2**20
"""Bytes: allocations up to this size come from the heap (glibc's maximum on 64-bit)."""
TRIM_THRESHOLD = 2**30
"""Bytes of freed memory at the heap's top kept mapped before any is handed back."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MALLOC_SETTINGS = ("hedgearena", "system")
"""Values of ``HEDGEARENA_MALLOC``: ``hedgearena`` (the default) applies
:func:`keep_freed_memory` at import, ``system`` leaves the allocator alone."""


def malloc_setting() -> str:
    """The ``HEDGEARENA_MALLOC`` environment variable, checked (default ``hedgearena``)."""
    value = os.environ.get("HEDGEARENA_MALLOC", "hedgearena")
    if value not in MALLOC_SETTINGS:
        raise ValueError(
            f"HEDGEARENA_MALLOC must be one of {', '.join(MALLOC_SETTINGS)}; got {value!r}"
        )
    return value


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; True if applied (False off glibc).

    Process-wide and idempotent. Returns False, changing nothing, on systems whose C library is
    not glibc (macOS, Windows, musl).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


EPISODE_BYTES_PER_PATH_STEP = 128
"""A lower bound of the bytes a block of episodes keeps per path and market step (measured with
tracemalloc: a state-only ShortCall vector env keeps 146 at 1,000 steps and 167 at 20; with
observations 190 to 550 on the presets, a hedging option and the observed P&L), so that
:func:`check_episode_memory` refuses only what cannot fit."""


def physical_memory() -> int | None:
    """Bytes of physical memory of the machine, or None where the system does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_episode_memory(n_paths: int, n_steps: int, paths: str) -> None:
    """Raise ``ValueError`` before building blocks of episodes that cannot fit in memory.

    A block of ``n_paths`` episodes of ``n_steps`` market steps keeps at least
    :data:`EPISODE_BYTES_PER_PATH_STEP` bytes a path and step (``n_steps + 1`` steps a path);
    the bound is :func:`physical_memory` (no check where the system does not say).

    Args:
        n_paths: paths built at a time.
        n_steps: market steps per episode.
        paths: the setting that sets ``n_paths``, for the message (e.g. ``"num_envs=512"``).

    Examples:
        >>> check_episode_memory(256, 10**12, "block=256")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: n_steps=1,000,000,000,000 market steps are too many for this machine: ...
    """
    per_path = EPISODE_BYTES_PER_PATH_STEP * (int(n_steps) + 1)
    need, have = int(n_paths) * per_path, physical_memory()
    if have is None or need <= have:
        return
    fit = have // (2 * per_path)
    steps, gib = f"n_steps={int(n_steps):,} market steps", f"{have / 2**30:,.1f} GiB"
    if not fit:  # the steps are the problem, whatever built the paths
        raise ValueError(
            f"{steps} are too many for this machine: one path would take at least "
            f"{per_path / 2**30:,.1f} GiB ({EPISODE_BYTES_PER_PATH_STEP} bytes a step), more than "
            f"half its {gib} of memory: give fewer n_steps"
        )
    raise ValueError(
        f"{paths} paths of {steps} would take at least {need / 2**30:,.1f} GiB to build "
        f"({EPISODE_BYTES_PER_PATH_STEP} bytes a path and step), more than this machine's {gib} "
        f"of memory: give fewer paths or steps (about {fit:,} paths of these steps fit in half "
        "of it)"
    )
