"""prune_downloads: age and quota limits on the download folder, touching only its own files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kitapp.downloads import _safe_basename, prune_downloads

NOW = 1_700_000_000.0
DAY = 86400.0


def download_file(directory: Path, tag: str, size: int, age: float, suffix: str = "") -> Path:
    """A file named as download_to_dir names them, ``age`` seconds old at NOW."""
    path = directory / f"{tag * 32}-{tag}.bin{suffix}"
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age, NOW - age))
    return path


def names(paths: list[str]) -> list[str]:
    return [os.path.basename(p) for p in paths]


def test_files_older_than_max_age_are_removed(tmp_path: Path) -> None:
    old = download_file(tmp_path, "a", 10, age=2 * DAY)
    older = download_file(tmp_path, "b", 10, age=3 * DAY)
    young = download_file(tmp_path, "c", 10, age=DAY - 60)

    removed = prune_downloads(str(tmp_path), max_age=DAY, quota_bytes=10**9, now=NOW)

    assert removed == [str(older), str(old)]  # oldest first
    assert not old.exists() and not older.exists()
    assert young.exists()


def test_oldest_files_are_removed_until_under_the_quota(tmp_path: Path) -> None:
    first = download_file(tmp_path, "a", 400, age=300)
    second = download_file(tmp_path, "b", 400, age=200)
    third = download_file(tmp_path, "c", 400, age=100)

    removed = prune_downloads(str(tmp_path), max_age=DAY, quota_bytes=1000, now=NOW)

    assert removed == [str(first)]
    assert second.exists() and third.exists()  # 800 bytes left, under 1000


def test_a_folder_exactly_at_the_quota_is_left_alone(tmp_path: Path) -> None:
    download_file(tmp_path, "a", 500, age=300)
    download_file(tmp_path, "b", 500, age=200)

    assert prune_downloads(str(tmp_path), max_age=DAY, quota_bytes=1000, now=NOW) == []


def test_reserve_leaves_room_for_the_next_download(tmp_path: Path) -> None:
    first = download_file(tmp_path, "a", 400, age=300)
    second = download_file(tmp_path, "b", 400, age=200)
    third = download_file(tmp_path, "c", 400, age=100)

    removed = prune_downloads(
        str(tmp_path), max_age=DAY, quota_bytes=1200, reserve_bytes=500, now=NOW
    )

    assert removed == [str(first), str(second)]  # 800 + 500 > 1200 >= 400 + 500
    assert third.exists()


def test_age_then_quota(tmp_path: Path) -> None:
    expired = download_file(tmp_path, "a", 100, age=2 * DAY)
    big = download_file(tmp_path, "b", 900, age=300)
    small = download_file(tmp_path, "c", 200, age=100)

    removed = prune_downloads(str(tmp_path), max_age=DAY, quota_bytes=1000, now=NOW)

    assert names(removed) == [expired.name, big.name]
    assert small.exists()


def test_partial_files_are_removed_only_when_stale(tmp_path: Path) -> None:
    live = download_file(tmp_path, "a", 5000, age=30, suffix=".part")
    stale = download_file(tmp_path, "b", 10, age=400, suffix=".part")
    done = download_file(tmp_path, "c", 100, age=60)

    removed = prune_downloads(str(tmp_path), max_age=1, quota_bytes=1000, part_max_age=360, now=NOW)

    # The stale partial file goes; the finished one is older than max_age; the live partial
    # file stays although the folder is over its quota (another worker is writing it).
    assert names(removed) == [stale.name, done.name]
    assert live.exists()


def test_only_the_apps_regular_files_are_touched(tmp_path: Path) -> None:
    folder = tmp_path / "downloads"
    folder.mkdir()
    outside = tmp_path / "precious.bin"
    outside.write_bytes(b"keep me")
    os.utime(outside, (NOW - 9 * DAY, NOW - 9 * DAY))
    hex_name = "d" * 32
    link = folder / f"{hex_name}-link.bin"
    link.symlink_to(outside)
    os.utime(link, (NOW - 9 * DAY, NOW - 9 * DAY), follow_symlinks=False)
    subdir = folder / f"{'e' * 32}-dir.bin"
    subdir.mkdir()
    nested = download_file(subdir, "f", 10, age=9 * DAY)
    foreign = folder / "notes.txt"
    foreign.write_bytes(b"x" * 5000)
    os.utime(foreign, (NOW - 9 * DAY, NOW - 9 * DAY))
    lookalike = folder / "ABCDEF-upper.bin"
    lookalike.write_bytes(b"x")
    os.utime(lookalike, (NOW - 9 * DAY, NOW - 9 * DAY))
    mine = download_file(folder, "0", 10, age=9 * DAY)

    removed = prune_downloads(str(folder), max_age=DAY, quota_bytes=1, now=NOW)

    assert removed == [str(mine)]
    assert link.is_symlink() and outside.read_bytes() == b"keep me"
    assert nested.exists() and foreign.exists() and lookalike.exists()


def test_a_missing_folder_has_nothing_to_prune(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    assert prune_downloads(str(missing), max_age=1, quota_bytes=1, now=NOW) == []


def test_now_defaults_to_the_clock(tmp_path: Path) -> None:
    path = tmp_path / f"{'a' * 32}-x.bin"
    path.write_bytes(b"x")
    os.utime(path, (1000.0, 1000.0))  # 1970

    assert prune_downloads(str(tmp_path), max_age=DAY, quota_bytes=10) == [str(path)]


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://h/file.bin", "file.bin"),
        ("http://h/", "download"),
        ("http://h/..hidden", "hidden"),
        ("http://h/a%20b.txt", "a_20b.txt"),
        ("http://h/x.part", "x_part"),  # only partial files end in ".part"
    ],
)
def test_download_names_match_what_prune_removes(url: str, name: str, tmp_path: Path) -> None:
    assert _safe_basename(url) == name
    path = tmp_path / f"{'9' * 32}-{name}"
    path.write_bytes(b"x")
    os.utime(path, (NOW - 2 * DAY, NOW - 2 * DAY))
    assert prune_downloads(str(tmp_path), max_age=DAY, quota_bytes=10, now=NOW) == [str(path)]
