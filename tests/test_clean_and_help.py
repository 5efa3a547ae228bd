"""`scons -h` builds nothing and makes no folder; `scons -c` leaves no build folder behind (before: -h made
BUILD_DIR through SConsignFile, and -c left BUILD_DIR holding SCons' database and the build lock)."""
import os

from codegen.fsutil import remove_if_only
from helpers import ROOT, run_scons


def test_help_makes_no_build_folder(tmp_path):
    before = set(os.listdir(ROOT))
    proc = run_scons(tmp_path / "b", "-h")
    assert "Targets" in proc.stdout
    assert not (tmp_path / "b").exists()
    assert set(os.listdir(ROOT)) == before            # nor a .sconsign in the checkout


def test_clean_removes_the_build_folder(tmp_path):
    build = tmp_path / "build" / "tiny"                 # a profile's build/<ENV>
    run_scons(build, "dataset")
    assert (build / ".sconsign.dblite").is_file() and (build / "nano33ble" / "dataset.npz").is_file()
    proc = run_scons(build, "-c")
    assert "Removed" in proc.stdout
    assert not build.exists(), sorted(str(p.relative_to(build)) for p in build.rglob("*"))
    assert (tmp_path / "build").is_dir()             # not the default build/ of the project: left alone


def test_remove_if_only_keeps_a_folder_with_anything_else(tmp_path):
    (tmp_path / "a" / "empty").mkdir(parents=True)
    (tmp_path / "a" / ".sconsign.dblite").write_text("x")
    (tmp_path / "a" / "download-cache").mkdir()
    (tmp_path / "a" / "download-cache" / "archive.part").write_text("partial")
    assert not remove_if_only(str(tmp_path / "a"), (".sconsign", ".scons.lock"))
    assert sorted(os.listdir(tmp_path / "a")) == [".sconsign.dblite", "download-cache"]
    (tmp_path / "b" / "x").mkdir(parents=True)
    (tmp_path / "b" / ".scons.lock").write_text("1")
    assert remove_if_only(str(tmp_path / "b"), (".sconsign", ".scons.lock")) and not (tmp_path / "b").exists()
