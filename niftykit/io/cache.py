"""A volume cache: decoded, preprocessed volumes kept in memory and on disk.

Decoding a ``.nii.gz`` and preprocessing it (reorient, resample, normalise)
costs far more than cutting windows from it, and training visits every
subject many times. :class:`VolumeCache` keeps the most recently used
subjects in memory, bounded by bytes, and can also keep them on disk as plain
``.npy`` files that are memory-mapped back (no gzip decoding) on a later run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from niftykit.typing import PathLike

__all__ = ["VolumeCache"]

logger = logging.getLogger("niftykit")

Arrays = dict[str, np.ndarray]
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_PREFIX_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def _safe_key(key: str) -> str:
    """A folder name for ``key``: a readable prefix and a SHA-256 digest, no separators."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    prefix = _PREFIX_CHARS.sub("_", key)[-40:].lstrip("._-")
    return f"{prefix}-{digest}" if prefix else digest


def _nbytes(arrays: Mapping[str, np.ndarray]) -> int:
    return sum(int(a.nbytes) for a in arrays.values())


def _check_arrays(key: str, arrays: object) -> Arrays:
    if not isinstance(arrays, Mapping) or not all(isinstance(a, np.ndarray) for a in arrays.values()):
        raise TypeError(f"VolumeCache: load() for key {key!r} must return a dict of numpy arrays")
    for name in arrays:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"VolumeCache: array name {name!r} for key {key!r} must match {_NAME.pattern}")
    return dict(arrays)


class VolumeCache:
    """Least-recently-used cache of named arrays per subject, bounded by bytes.

    ``get(key, load)`` returns the arrays stored under ``key``, calling
    ``load()`` only on a miss. The key must identify both the input files and
    the preprocessing (e.g. subject id, file modification times and a digest of
    the preprocessing settings): a stale disk entry is never detected.

    Cached arrays are read-only (memory-mapped ones, and those from ``load``
    are marked so); copy before modifying. The cache is thread-safe: different
    keys load in parallel, and concurrent requests for one key load it once.

    Args:
        max_bytes: bound on the total ``nbytes`` of the arrays held in memory;
            least recently used entries are evicted to stay under it. An entry
            larger than this is returned but not kept (with one warning). 0
            keeps nothing in memory (useful with ``disk_dir``).
        disk_dir: optional folder of ``<safe key>/<name>.npy`` files. A miss
            memory-maps them when present; otherwise ``load()`` is called, its
            arrays saved there (atomically) and memory-mapped back.
    """

    def __init__(self, max_bytes: int, disk_dir: PathLike | None = None) -> None:
        if max_bytes < 0:
            raise ValueError(f"VolumeCache: max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        self._entries: OrderedDict[str, Arrays] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._counts = {"hits": 0, "misses": 0, "disk_hits": 0}
        self._warned_large = False

    @property
    def stats(self) -> dict[str, int]:
        """``hits`` and ``misses`` (in memory), ``disk_hits`` (misses served from disk),
        ``bytes`` held in memory and the number of ``entries``."""
        with self._lock:
            return {**self._counts, "bytes": self._bytes, "entries": len(self._entries)}

    def get(self, key: str, load: Callable[[], Mapping[str, np.ndarray]]) -> Arrays:
        """The arrays for ``key``, loading them on a miss.

        Args:
            key: identifies the volume and its preprocessing.
            load: returns ``{name: array}``; names are file-name safe
                (letters, digits, ``_``, ``.``, ``-``), e.g. ``"image"``, ``"label"``.

        Returns:
            A new dict of the cached (read-only) arrays.

        Raises:
            TypeError: ``load`` did not return a dict of numpy arrays.
            ValueError: an array name is not file-name safe.
        """
        hit = self._lookup(key)
        if hit is not None:
            return hit
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one loader per key; the others wait, then find it in memory
            try:
                hit = self._lookup(key)
                if hit is not None:
                    return hit
                arrays = self._fetch(key, load)
                self._store(key, arrays)
            finally:
                with self._lock:
                    if self._key_locks.get(key) is key_lock:
                        del self._key_locks[key]
        return dict(arrays)

    def clear(self) -> None:
        """Drop every entry held in memory (the disk cache stays)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _lookup(self, key: str) -> Arrays | None:
        with self._lock:
            arrays = self._entries.get(key)
            if arrays is None:
                return None
            self._entries.move_to_end(key)
            self._counts["hits"] += 1
            return dict(arrays)

    def _store(self, key: str, arrays: Arrays) -> None:
        """Count a miss; keep ``arrays`` if they fit, evicting least recently used entries."""
        size = _nbytes(arrays)
        with self._lock:
            self._counts["misses"] += 1
            if size > self.max_bytes:
                warn = self.max_bytes > 0 and not self._warned_large
                self._warned_large = self._warned_large or warn
            else:
                warn = False
                self._entries[key] = arrays
                self._bytes += size
                while self._bytes > self.max_bytes:
                    _, old = self._entries.popitem(last=False)
                    self._bytes -= _nbytes(old)
        if warn:
            logger.warning(
                "volume cache: %r needs %.1f MB, more than the cache's %.1f MB; it is not kept in memory "
                "(raise the cache size to keep such volumes)", key, size / 2**20, self.max_bytes / 2**20
            )

    def _fetch(self, key: str, load: Callable[[], Mapping[str, np.ndarray]]) -> Arrays:
        folder = self.disk_dir / _safe_key(key) if self.disk_dir is not None else None
        if folder is not None and folder.is_dir():
            with self._lock:
                self._counts["disk_hits"] += 1
            return _read_folder(folder)
        arrays = _check_arrays(key, load())
        if folder is not None:
            try:
                _write_folder(folder, key, arrays)
                return _read_folder(folder)
            except OSError as exc:
                logger.warning("volume cache: cannot store %r in %s (%s); keeping it in memory only", key, folder, exc)
        for array in arrays.values():
            array.flags.writeable = False
        return arrays


def _read_folder(folder: Path) -> Arrays:
    """Memory-map every ``<name>.npy`` in ``folder`` read-only."""
    return {p.stem: np.load(p, mmap_mode="r") for p in sorted(folder.glob("*.npy"))}


def _write_folder(folder: Path, key: str, arrays: Arrays) -> None:
    """Save ``arrays`` as ``folder/<name>.npy``: written in a hidden sibling folder, then renamed into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{folder.name}")
    try:
        tmp.mkdir()
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        (tmp / "key.txt").write_text(key, encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:
            if not folder.is_dir():  # else another process stored the same key first: use theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
