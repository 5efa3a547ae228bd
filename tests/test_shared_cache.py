"""CACHE_DIR= shared by two users (a second uid via setpriv): filled and read by both, files with the users'
umask, a read-only or unusable cache a warning, a damaged entry evicted and rebuilt (README, Troubleshooting)."""
import os
import stat
import subprocess
import zipfile

import pytest

from helpers import ROOT, TINY, as_user_command, built_stages, scons_exe

pytestmark = pytest.mark.heavy

TEAM_GID = 4242


def _scons_as(uid, gid, home, build, cache, *targets, umask=0o002, **variables):
    args = {**TINY, "BUILD_DIR": str(build), "CACHE_DIR": str(cache), **variables}
    cmd = as_user_command(uid, gid, ["env", f"HOME={home}", scons_exe(), "-C", ROOT,
                                     *[f"{k}={v}" for k, v in args.items()], *targets], umask=umask)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def _home(tmp_path, name, uid, gid):
    home = tmp_path / name
    home.mkdir()
    os.chown(home, uid, gid)
    return home


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _warnings(proc):
    return [l for l in proc.stderr.splitlines() if l.startswith("warning:")]


def test_two_users_share_one_cache(shared_tmp):
    tmp_path = shared_tmp
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chown(cache, 0, TEAM_GID)
    os.chmod(cache, 0o2775)                  # a team's share: group-writable, new entries keep the group
    alice = _home(tmp_path, "alice", 2001, TEAM_GID)
    bob = _home(tmp_path, "bob", 2002, TEAM_GID)

    first = _ok(_scons_as(2001, TEAM_GID, alice, alice / "b", cache))
    assert "Training MobileNetV1" in built_stages(first.stdout)
    entries = [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs if len(f) == 32]
    assert entries
    for entry in entries:                    # umask 002: group-readable and -writable, not 0600
        mode = stat.S_IMODE(os.stat(entry).st_mode)
        assert mode & 0o660 == 0o660, (entry, oct(mode))
        assert os.path.isfile(entry + ".sha256")

    # Bob (another checkout's build dir) takes Alice's model, and fills the cache for his own inputs.
    heldout = alice / "b" / "nano33ble" / "heldout" / "target.png"
    second = _ok(_scons_as(2002, TEAM_GID, bob, bob / "b", cache, INPUTS=str(heldout)))
    stages = built_stages(second.stdout)
    assert not any(s.startswith(("Training", "Quantizing", "TVM codegen")) for s in stages), second.stdout
    assert "Embedding images" in stages and "Host check (gcc build + run vs TFLite)" in stages
    assert _warnings(second) == [], second.stderr
    bobs = [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs
            if len(f) == 32 and os.stat(os.path.join(d, f)).st_uid == 2002]
    assert bobs

    # ... and Alice, in a fresh build dir, takes Bob's entries: nothing to build.
    third = _ok(_scons_as(2001, TEAM_GID, alice, alice / "c", cache, INPUTS=str(heldout)))
    assert [s for s in built_stages(third.stdout) if not s.startswith(("Generating synthetic", "Rendering"))] \
        == [], third.stdout

    # Carol is not in the team: the cache is read-only for her. One warning; she still gets the results.
    carol = _home(tmp_path, "carol", 2003, 2003)
    fourth = _ok(_scons_as(2003, 2003, carol, carol / "b", cache, "mlf"))
    assert [w for w in _warnings(fourth) if "read-only" in w], fourth.stderr
    assert "Training MobileNetV1" not in built_stages(fourth.stdout)
    assert "Traceback" not in fourth.stderr

    # A truncated entry (a full disk on the share, a killed copy) is found, reported, evicted and rebuilt.
    model_entry = next(e for e in entries if zipfile.is_zipfile(e)
                       and "model.weights.h5" in zipfile.ZipFile(e).namelist())          # model.keras
    with open(model_entry, "r+b") as f:
        f.truncate(1000)
    fifth = _ok(_scons_as(2002, TEAM_GID, bob, bob / "d", cache, "quantize"))
    damaged = [w for w in _warnings(fifth) if "not trusted" in w]
    assert len(damaged) == 1 and model_entry in damaged[0] and "model.keras" in damaged[0], fifth.stderr
    assert "Training MobileNetV1" in built_stages(fifth.stdout)
    sixth = _ok(_scons_as(2002, TEAM_GID, bob, bob / "e", cache, "quantize"))
    assert "Training MobileNetV1" not in built_stages(sixth.stdout) and _warnings(sixth) == []


def test_unusable_cache_dir_is_a_warning(shared_tmp):
    tmp_path = shared_tmp                    # belongs to root, 0755: dave may not create the cache in it
    dave = _home(tmp_path, "dave", 2004, 2004)
    proc = _ok(_scons_as(2004, 2004, dave, dave / "b", tmp_path / "cache", "dataset"))
    warnings = _warnings(proc)
    assert len(warnings) == 1 and "cannot be used" in warnings[0] and "CACHE_DIR=" in warnings[0], proc.stderr
    assert "Traceback" not in proc.stderr and (dave / "b" / "nano33ble" / "dataset.npz").is_file()
