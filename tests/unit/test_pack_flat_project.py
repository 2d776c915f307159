"""The celery_app role's packer of flat projects: same files, same bytes; caches left out."""

from __future__ import annotations

import hashlib
import importlib.util
import tarfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "ansible/roles/celery_app/files/pack-flat-project.py"
spec = importlib.util.spec_from_file_location("pack_flat_project", SCRIPT)
packer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(packer)


def project(folder: Path) -> Path:
    (folder / "pkg").mkdir(parents=True)
    (folder / "CeleryApp.py").write_text("app = None\n")
    (folder / "Tasks.py").write_text("x = 1\n")
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "Tasks.cpython-311.pyc").write_bytes(b"\0")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return folder


def test_same_files_pack_to_the_same_bytes_whatever_their_times(tmp_path) -> None:
    source = project(tmp_path / "src")
    first = packer.pack(source, tmp_path / "a.tar.gz")
    (source / "Tasks.py").touch()
    assert packer.pack(source, tmp_path / "b.tar.gz") == first
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_a_changed_file_changes_the_checksum(tmp_path) -> None:
    source = project(tmp_path / "src")
    first = packer.pack(source, tmp_path / "a.tar.gz")
    (source / "Tasks.py").write_text("x = 2\n")
    assert packer.pack(source, tmp_path / "a.tar.gz") != first


def test_caches_and_version_control_are_left_out(tmp_path) -> None:
    source = project(tmp_path / "src")
    packer.pack(source, tmp_path / "a.tar.gz")
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["CeleryApp.py", "Tasks.py", "pkg/__init__.py"]


def test_digest_of_a_source_follows_its_files_not_their_times_caches_or_build_outputs(
    tmp_path,
) -> None:
    source = project(tmp_path / "src")
    first = packer.digest(source)
    (source / "Tasks.py").touch()
    for output in ("build/lib", "dist", "pkg.egg-info"):
        (source / output).mkdir(parents=True)
        (source / output / "x").write_text("built\n")
    (source / "__pycache__" / "CeleryApp.cpython-311.pyc").write_bytes(b"\1")
    assert packer.digest(source) == first
    (source / "Tasks.py").write_text("x = 2\n")
    assert packer.digest(source) != first


def test_digest_of_a_renamed_file_differs_and_a_distribution_file_is_its_bytes(tmp_path) -> None:
    source = project(tmp_path / "src")
    first = packer.digest(source)
    (source / "Tasks.py").rename(source / "Jobs.py")
    assert packer.digest(source) != first
    wheel = tmp_path / "kitapp-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK wheel bytes")
    assert packer.digest(wheel) == hashlib.sha256(b"PK wheel bytes").hexdigest()
