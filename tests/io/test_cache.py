from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from niftykit.io.cache import VolumeCache

MB = 2**20


class Loader:
    """Counts calls; returns ``{"image": float32 (n,), "label": int32 (n,)}`` filled with the key's number."""

    def __init__(self, elements: int = 1000, delay: float = 0.0) -> None:
        self.elements, self.delay = elements, delay
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str):
        def load() -> dict[str, np.ndarray]:
            with self._lock:
                self.calls[key] = self.calls.get(key, 0) + 1
            time.sleep(self.delay)
            value = int(key.rsplit("-", 1)[-1])
            return {
                "image": np.full(self.elements, value, np.float32),
                "label": np.full(self.elements, value, np.int32),
            }

        return load

    @property
    def total(self) -> int:
        return sum(self.calls.values())


ENTRY = 8000  # bytes of one Loader() entry: 1000 float32 + 1000 int32


def test_hit_returns_the_same_arrays_without_loading():
    cache, loader = VolumeCache(10 * ENTRY), Loader()
    first = cache.get("s-1", loader("s-1"))
    second = cache.get("s-1", loader("s-1"))
    assert loader.total == 1
    assert second["image"] is first["image"] and second is not first
    assert cache.stats == {"hits": 1, "misses": 1, "disk_hits": 0, "bytes": ENTRY, "entries": 1}


def test_byte_bound_is_respected_with_many_entries():
    cache, loader = VolumeCache(3 * ENTRY + 100), Loader()
    for i in range(20):
        arrays = cache.get(f"s-{i}", loader(f"s-{i}"))
        assert arrays["label"][0] == i
        assert cache.stats["bytes"] <= 3 * ENTRY + 100
    assert cache.stats["entries"] == 3 and cache.stats["bytes"] == 3 * ENTRY


def test_least_recently_used_is_evicted_first():
    cache, loader = VolumeCache(3 * ENTRY), Loader()
    for key in ("s-0", "s-1", "s-2"):
        cache.get(key, loader(key))
    cache.get("s-0", loader("s-0"))  # s-1 is now the least recently used
    cache.get("s-3", loader("s-3"))
    cache.get("s-0", loader("s-0"))
    cache.get("s-2", loader("s-2"))
    assert loader.calls == {"s-0": 1, "s-1": 1, "s-2": 1, "s-3": 1}
    cache.get("s-1", loader("s-1"))
    assert loader.calls["s-1"] == 2


def test_entry_larger_than_the_bound_is_returned_not_kept_and_warned_once(caplog):
    cache, loader = VolumeCache(ENTRY - 1), Loader()
    with caplog.at_level(logging.WARNING, logger="niftykit"):
        for key in ("s-1", "s-1", "s-2"):
            assert cache.get(key, loader(key))["image"][0] == int(key[-1])
    assert loader.total == 3
    assert cache.stats["entries"] == 0 and cache.stats["bytes"] == 0
    warnings = [r for r in caplog.records if "not kept in memory" in r.getMessage()]
    assert len(warnings) == 1 and "s-1" in warnings[0].getMessage()


def test_cached_arrays_are_read_only():
    cache = VolumeCache(MB)
    arrays = cache.get("s-1", Loader()("s-1"))
    with pytest.raises(ValueError, match="read-only"):
        arrays["image"][0] = 5.0


def test_disk_cache_survives_a_new_cache_without_loading(tmp_path):
    loader = Loader()
    first = VolumeCache(MB, disk_dir=tmp_path).get("sub-7", loader("sub-7"))
    assert loader.total == 1
    fresh = VolumeCache(MB, disk_dir=tmp_path)
    arrays = fresh.get("sub-7", loader("sub-7"))
    assert loader.total == 1
    assert fresh.stats["disk_hits"] == 1 and fresh.stats["misses"] == 1
    assert set(arrays) == {"image", "label"}
    np.testing.assert_array_equal(arrays["label"], first["label"])
    assert arrays["label"].dtype == np.int32 and arrays["image"].dtype == np.float32


def test_disk_arrays_are_read_only_memory_maps(tmp_path):
    arrays = VolumeCache(MB, disk_dir=tmp_path).get("s-2", Loader()("s-2"))
    for array in arrays.values():
        assert isinstance(array, np.memmap)
        assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        arrays["image"][:3] = 0.0


def test_disk_layout_is_one_folder_of_npy_per_key_and_no_temporaries(tmp_path):
    cache = VolumeCache(0, disk_dir=tmp_path / "cache")
    cache.get("s-3", Loader()("s-3"))
    (folder,) = (tmp_path / "cache").iterdir()
    assert folder.name.startswith("s-3-")
    assert sorted(p.name for p in folder.iterdir()) == ["image.npy", "key.txt", "label.npy"]
    assert (folder / "key.txt").read_text() == "s-3"
    assert np.load(folder / "label.npy")[0] == 3


@pytest.mark.parametrize("key", ["../../etc/passwd-1", "/abs/path-1", "a/../../b-1", "..-1", "C:\\x\\..\\y-1"])
def test_keys_never_escape_the_disk_folder(tmp_path, key):
    disk = tmp_path / "cache"
    VolumeCache(MB, disk_dir=disk).get(key, Loader()(key))
    entries = list(disk.iterdir())
    assert len(entries) == 1 and entries[0].is_dir()
    assert entries[0].resolve().parent == disk.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_similar_keys_get_distinct_folders(tmp_path):
    cache, loader = VolumeCache(0, disk_dir=tmp_path), Loader()
    for key in ("a/b-1", "a_b-1", "a:b-1"):
        cache.get(key, loader(key))
    assert len(list(tmp_path.iterdir())) == 3 and loader.total == 3


def test_bad_array_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="array name"):
        VolumeCache(MB, disk_dir=tmp_path).get("k", lambda: {"../x": np.zeros(2)})


def test_failed_load_caches_nothing(tmp_path):
    cache = VolumeCache(MB, disk_dir=tmp_path)

    def broken() -> dict[str, np.ndarray]:
        raise OSError("disk read error")

    with pytest.raises(OSError, match="disk read error"):
        cache.get("s-1", broken)
    assert list(tmp_path.iterdir()) == []
    assert cache.get("s-1", Loader()("s-1"))["label"][0] == 1


def _hammer(cache: VolumeCache, loader: Loader, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda k: (k, cache.get(k, loader(k))), keys))
    for key, arrays in results:
        value = int(key.rsplit("-", 1)[-1])
        assert arrays["image"][0] == value and arrays["label"][-1] == value


@pytest.mark.parametrize("use_disk", [False, True])
def test_threads_get_the_right_arrays_and_load_each_key_once_while_it_fits(tmp_path, use_disk):
    rng = np.random.default_rng(0)
    keys = [f"s-{i}" for i in rng.integers(0, 6, size=300)]
    loader = Loader(delay=0.002)
    cache = VolumeCache(10 * ENTRY, disk_dir=tmp_path if use_disk else None)
    _hammer(cache, loader, keys)
    stats = cache.stats
    assert all(n == 1 for n in loader.calls.values())  # concurrent requests for a key share one load
    assert stats["hits"] + stats["misses"] == len(keys)
    assert stats["misses"] == len(set(keys))


def test_threads_respect_the_byte_bound_under_eviction():
    rng = np.random.default_rng(1)
    keys = [f"s-{i}" for i in rng.integers(0, 20, size=400)]
    loader = Loader()
    cache = VolumeCache(4 * ENTRY)
    _hammer(cache, loader, keys)
    stats = cache.stats
    assert stats["bytes"] <= 4 * ENTRY and stats["entries"] <= 4
    assert stats["hits"] + stats["misses"] == len(keys) == stats["hits"] + loader.total


def test_negative_bound_is_a_programming_error(tmp_path: Path):
    with pytest.raises(ValueError, match="max_bytes"):
        VolumeCache(-1, disk_dir=tmp_path)
