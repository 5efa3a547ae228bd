"""Tests for codegen/stages/download.py against a local HTTP server (no internet)."""

import hashlib
import http.server
import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from codegen.stages import download  # noqa: E402
from codegen.stages.download import (  # noqa: E402
    DownloadError,
    extract_class_folder,
    fetch,
    tutorial_dataset,
)


def sha(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# Local HTTP server
# --------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server
        path = self.path
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((path, rng))
            data = srv.files.get(path)
            ignore_range = path in srv.ignore_range
            drop_after = None
            if srv.drops.get(path):
                srv.drops[path] -= 1
                drop_after = srv.drop_after[path]
            stall_after = None
            if srv.stalls.get(path):
                srv.stalls[path] -= 1
                stall_after = srv.stall_after[path]
            fail = None
            if srv.failures.get(path):
                srv.failures[path] -= 1
                fail = 500

        if fail and srv.retry_after is not None:
            return self._plain(503, b"busy", {"Retry-After": srv.retry_after})
        if fail:
            return self._plain(fail, b"temporary failure")
        if data is None:
            return self._plain(404, b"not found")

        start = 0
        status = 200
        if rng and not ignore_range:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            assert m, rng
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                with srv.lock:
                    srv.statuses.append(416)
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Accept-Ranges", "bytes")
        # Bookkeeping happens before the body is sent: once the client has
        # the data, the test may inspect these counters.
        sent = len(body)
        if drop_after is not None:
            sent = min(drop_after, sent)
        elif stall_after is not None:
            sent = min(stall_after, sent)
        with srv.lock:
            srv.statuses.append(status)
            srv.bytes_sent += sent
        self.end_headers()

        if drop_after is not None:
            self.wfile.write(body[:drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if stall_after is not None:
            self.wfile.write(body[:stall_after])
            self.wfile.flush()
            time.sleep(1.0)  # longer than the client's timeout
            self.close_connection = True
            return
        self.wfile.write(body)

    def _plain(self, code, body, headers=None):
        with self.server.lock:
            self.server.statuses.append(code)
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.files = {}
        self.ignore_range = set()
        self.drops, self.drop_after = {}, {}
        self.stalls, self.stall_after = {}, {}
        self.failures = {}
        self.retry_after = None         # a Retry-After header on the failures (as a 503)
        self.requests = []
        self.statuses = []
        self.bytes_sent = 0

    def handle_error(self, request, client_address):
        pass  # dropped/stalled connections are intentional

    def url(self, path):
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def drop(self, path, after, times=1):
        self.drops[path] = times
        self.drop_after[path] = after

    def stall(self, path, after, times=1):
        self.stalls[path] = times
        self.stall_after[path] = after


@pytest.fixture
def server():
    srv = _Server()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(download, "RETRY_BACKOFF", 0.0)


PAYLOAD = os.urandom(300_000)  # several chunks of CHUNK_SIZE


# --------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------

def test_fetch_plain_download(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "sub" / "f.bin"
    calls = []
    out = fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD),
                progress=lambda d, t: calls.append((d, t)))
    assert out == str(dest)
    assert dest.read_bytes() == PAYLOAD
    assert not os.path.exists(str(dest) + ".part")
    assert server.requests == [("/f.bin", None)]
    assert calls[-1] == (len(PAYLOAD), len(PAYLOAD))
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(calls) > 2


def test_fetch_resumes_after_dropped_connection(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.drop("/f.bin", after=100_000)
    dest = tmp_path / "f.bin"
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD), retries=1)
    assert sha(dest.read_bytes()) == sha(PAYLOAD)
    assert [r for _, r in server.requests] == [None, "bytes=100000-"]
    assert server.statuses == [200, 206]
    # Only the missing tail was sent the second time.
    assert server.bytes_sent == len(PAYLOAD)


def test_fetch_resumes_existing_part_file(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:12345])
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/f.bin", "bytes=12345-")]
    assert server.bytes_sent == len(PAYLOAD) - 12345


def test_fetch_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.ignore_range.add("/f.bin")
    dest = tmp_path / "f.bin"
    # Garbage in the .part: appending to it would corrupt the result.
    (tmp_path / "f.bin.part").write_bytes(b"x" * 5000)
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/f.bin", "bytes=5000-")]
    assert server.statuses == [200]


def test_fetch_ignoring_range_and_dropping_still_completes(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.ignore_range.add("/f.bin")
    server.drop("/f.bin", after=70_000)
    dest = tmp_path / "f.bin"
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.statuses == [200, 200]


def test_fetch_part_already_complete_gets_416(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.statuses == [416]
    assert server.bytes_sent == 0


def test_fetch_oversized_part_restarts(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD + b"junk")
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.statuses == [416, 200]


def test_fetch_404_is_download_error(server, tmp_path):
    dest = tmp_path / "missing.bin"
    url = server.url("/missing.bin")
    with pytest.raises(DownloadError) as exc:
        fetch(url, dest)
    msg = str(exc.value)
    assert "404" in msg and url in msg
    assert not dest.exists() and not os.path.exists(str(dest) + ".part")
    assert len(server.requests) == 1  # a 404 is not retried


def test_fetch_retries_transient_500(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.failures["/f.bin"] = 2
    dest = tmp_path / "f.bin"
    fetch(server.url("/f.bin"), dest, retries=2)
    assert dest.read_bytes() == PAYLOAD
    assert server.statuses == [500, 500, 200]


def test_fetch_gives_up_after_retries_and_keeps_part(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    # First request delivers 1000 bytes then drops; then the server fails.
    server.drop("/f.bin", after=1000)
    dest = tmp_path / "f.bin"

    def fail_from_now_on(d, t):
        if d >= 1000:
            server.failures["/f.bin"] = 100

    with pytest.raises(DownloadError) as exc:
        fetch(server.url("/f.bin"), dest, retries=2, progress=fail_from_now_on)
    assert "500" in str(exc.value)
    assert "resume" in str(exc.value)
    assert (tmp_path / "f.bin.part").read_bytes() == PAYLOAD[:1000]
    assert not dest.exists()
    assert server.statuses == [200, 500, 500, 500]
    # A later call resumes from the kept bytes.
    server.failures["/f.bin"] = 0
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/f.bin", "bytes=1000-")


def test_fetch_repeated_drops_with_progress_complete(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.drop("/f.bin", after=50_000, times=5)
    dest = tmp_path / "f.bin"
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD), retries=0)
    assert dest.read_bytes() == PAYLOAD
    assert server.statuses == [200] + [206] * 5


def test_fetch_no_progress_exhausts_retries(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.drop("/f.bin", after=0, times=100)
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as exc:
        fetch(server.url("/f.bin"), dest, retries=2)
    assert "3 attempts" in str(exc.value)
    assert len(server.requests) == 3
    assert not dest.exists()


def test_fetch_timeout_resumes(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.stall("/f.bin", after=80_000)
    dest = tmp_path / "f.bin"
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD), timeout=0.3)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, "bytes=80000-"]


def test_fetch_checksum_mismatch_then_success(server, tmp_path):
    wrong = b"not the archive" * 1000
    server.files["/f.bin"] = wrong
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as exc:
        fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD))
    msg = str(exc.value)
    assert sha(PAYLOAD) in msg and sha(wrong) in msg
    assert not dest.exists()
    assert not os.path.exists(str(dest) + ".part")
    server.files["/f.bin"] = PAYLOAD
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD).upper())
    assert dest.read_bytes() == PAYLOAD


def test_fetch_existing_dest_no_network(server, tmp_path):
    dest = tmp_path / "f.bin"
    dest.write_bytes(PAYLOAD)
    # Nothing is served at this URL: any request would 404.
    assert fetch(server.url("/nothing"), dest, sha256=sha(PAYLOAD)) == str(dest)
    assert fetch(server.url("/nothing"), dest) == str(dest)
    assert server.requests == []


def test_fetch_existing_dest_wrong_checksum_redownloads(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"stale")
    fetch(server.url("/f.bin"), dest, sha256=sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 1


def test_fetch_connection_refused(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on this port now
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(DownloadError) as exc:
        fetch(url, tmp_path / "x", retries=1, timeout=2)
    assert url in str(exc.value) and "network" in str(exc.value)


def test_download_error_is_a_pipeline_error():
    from codegen.errors import PipelineError
    assert issubclass(DownloadError, PipelineError)


def test_module_import_is_light():
    code = ("import sys; sys.path.insert(0, %r); import codegen.stages.download; "
            "heavy = [m for m in ('SCons', 'numpy', 'PIL', 'tensorflow', 'tvm') if m in sys.modules]; "
            "print(heavy)" % ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------

def _image_bytes(fmt, color):
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buf, format=fmt)
    return buf.getvalue()


def _add_tar(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


CAR_IMAGES = {
    "cars_train/00001.jpg": _image_bytes("JPEG", (255, 0, 0)),
    "cars_train/00002.jpg": _image_bytes("JPEG", (0, 255, 0)),
    "cars_train/deep/er/00003.PNG": _image_bytes("PNG", (0, 0, 255)),
    "cars_train/00004.jpeg": _image_bytes("JPEG", (9, 9, 9)),
}
COCO_IMAGES = {
    "val2017/000000000139.jpg": _image_bytes("JPEG", (10, 20, 30)),
    "val2017/000000000285.jpg": _image_bytes("JPEG", (40, 50, 60)),
    "val2017/sub/000000000632.png": _image_bytes("PNG", (70, 80, 90)),
}
EVIL = _image_bytes("PNG", (1, 2, 3))


def make_tgz(path, images=CAR_IMAGES):
    with tarfile.open(path, "w:gz") as tar:
        dir_info = tarfile.TarInfo("cars_train")
        dir_info.type = tarfile.DIRTYPE
        tar.addfile(dir_info)
        for name, data in images.items():
            _add_tar(tar, name, data)
        _add_tar(tar, "cars_train/README.txt", b"not an image")
        _add_tar(tar, "../evil.png", EVIL)
        _add_tar(tar, "/abs/evil2.png", EVIL)
        _add_tar(tar, "cars_train/._00001.jpg", b"apple double")
        link = tarfile.TarInfo("cars_train/link.jpg")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    return str(path)


def make_zip(path, images=COCO_IMAGES):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("val2017/", b"")
        for name, data in images.items():
            zf.writestr(name, data)
        zf.writestr("val2017/notes.txt", b"hello")
        zf.writestr("../evil.png", EVIL)
        zf.writestr("__MACOSX/val2017/._000000000139.jpg", b"resource fork")
    return str(path)


def _flat(images):
    return {os.path.basename(k): v for k, v in images.items()}


def _assert_no_escape(tmp_path):
    for root, _dirs, files in os.walk(tmp_path.parent):
        for f in files:
            if f.startswith("evil"):
                pytest.fail(f"traversal member extracted: {os.path.join(root, f)}")


@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_extract_all_images_flat(tmp_path, kind):
    arch_dir = tmp_path / "arch"
    arch_dir.mkdir()
    if kind == "tgz":
        archive, images = make_tgz(arch_dir / "cars_train.tgz"), CAR_IMAGES
    else:
        archive, images = make_zip(arch_dir / "val2017.zip"), COCO_IMAGES
    out = tmp_path / "work" / "out"
    paths = extract_class_folder(archive, out, "cls")
    expected = _flat(images)
    assert sorted(os.path.basename(p) for p in paths) == sorted(expected)
    assert all(os.path.dirname(p) == str(out / "cls") for p in paths)
    assert sorted(os.listdir(out / "cls")) == sorted(expected)
    for p in paths:
        with open(p, "rb") as f:
            assert f.read() == expected[os.path.basename(p)]
    assert os.listdir(out) == ["cls"]  # no temp dirs left behind
    _assert_no_escape(tmp_path / "work")
    assert not (tmp_path / "work" / "evil.png").exists()
    assert not (tmp_path / "evil.png").exists()


def test_extract_tar_gz_suffix_and_sniffing(tmp_path):
    a = make_tgz(tmp_path / "cars.tar.gz")
    assert len(extract_class_folder(a, tmp_path / "o1", "c")) == len(CAR_IMAGES)
    b = tmp_path / "download.bin"  # unknown suffix: detected from the content
    os.rename(make_zip(tmp_path / "x.zip"), b)
    assert len(extract_class_folder(b, tmp_path / "o2", "c")) == len(COCO_IMAGES)


def test_extract_limit_is_deterministic_subset(tmp_path):
    images = {f"d/{i:03d}.png": _image_bytes("PNG", (i, i, i)) for i in range(12)}
    archive = make_tgz(tmp_path / "many.tgz", images)
    everything = {os.path.basename(p) for p in extract_class_folder(archive, tmp_path / "all", "c")}
    assert len(everything) == 12

    def subset(seed, limit=5):
        paths = extract_class_folder(archive, tmp_path / f"s{seed}", "c", limit=limit, seed=seed)
        assert sorted(os.listdir(tmp_path / f"s{seed}" / "c")) == sorted(os.path.basename(p) for p in paths)
        return tuple(sorted(os.path.basename(p) for p in paths))

    first = subset(0)
    assert len(first) == 5 and set(first) <= everything
    assert subset(0) == first  # same seed, same files
    others = {subset(seed) for seed in range(1, 6)}
    assert any(o != first for o in others)
    # limit larger than the archive: everything; limit 0: empty folder
    assert len(extract_class_folder(archive, tmp_path / "big", "c", limit=100)) == 12
    assert extract_class_folder(archive, tmp_path / "zero", "c", limit=0) == []
    assert os.listdir(tmp_path / "zero" / "c") == []
    with pytest.raises(ValueError):
        extract_class_folder(archive, tmp_path / "neg", "c", limit=-1)


def test_extract_name_collisions_keep_both(tmp_path):
    a, b = _image_bytes("PNG", (1, 1, 1)), _image_bytes("PNG", (2, 2, 2))
    archive = make_zip(tmp_path / "dup.zip", {"a/x.png": a, "b/x.png": b})
    paths = extract_class_folder(archive, tmp_path / "out", "c")
    assert len(paths) == 2
    contents = sorted(Path(p).read_bytes() for p in paths)
    assert contents == sorted([a, b])


def test_extract_replaces_previous_folder(tmp_path):
    archive = make_zip(tmp_path / "val2017.zip")
    stale = tmp_path / "out" / "c" / "stale.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    paths = extract_class_folder(archive, tmp_path / "out", "c")
    assert not stale.exists()
    assert len(paths) == len(COCO_IMAGES)
    assert os.listdir(tmp_path / "out") == ["c"]


def test_extract_corrupt_archive_leaves_existing_folder(tmp_path):
    images = {f"d/{i}.png": os.urandom(20_000) for i in range(5)}
    good = make_tgz(tmp_path / "good.tgz", images)
    with open(good, "rb") as f:
        data = f.read()
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(data[: len(data) // 2])
    keep = tmp_path / "out" / "c" / "keep.png"
    keep.parent.mkdir(parents=True)
    keep.write_bytes(b"keep me")
    with pytest.raises(DownloadError) as exc:
        extract_class_folder(bad, tmp_path / "out", "c")
    assert str(bad) in str(exc.value) and "Delete" in str(exc.value)
    assert keep.read_bytes() == b"keep me"
    assert os.listdir(tmp_path / "out") == ["c"]
    assert os.listdir(tmp_path / "out" / "c") == ["keep.png"]


def test_extract_not_an_archive(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world" * 10)
    with pytest.raises(DownloadError):
        extract_class_folder(junk, tmp_path / "out", "c")
    assert not (tmp_path / "out" / "c").exists()


# --------------------------------------------------------------------------
# tutorial_dataset end to end
# --------------------------------------------------------------------------

@pytest.fixture
def served_archives(server, tmp_path):
    (tmp_path / "src").mkdir()
    tgz = make_tgz(tmp_path / "src" / "cars_train.tgz")
    zp = make_zip(tmp_path / "src" / "val2017.zip")
    server.files["/car196/cars_train.tgz"] = Path(tgz).read_bytes()
    server.files["/zips/val2017.zip"] = Path(zp).read_bytes()
    sources = {
        "target": (server.url("/car196/cars_train.tgz"), sha(server.files["/car196/cars_train.tgz"])),
        "random": (server.url("/zips/val2017.zip"), sha(server.files["/zips/val2017.zip"])),
    }
    return server, sources


def test_tutorial_dataset_end_to_end(served_archives, tmp_path):
    server, sources = served_archives
    server.drop("/zips/val2017.zip", after=300)  # exercise resume in the full flow
    out, cache = tmp_path / "dataset", tmp_path / "cache"
    seen = []
    counts = tutorial_dataset(out, cache_dir=cache, sources=sources,
                              progress=lambda d, t: seen.append((d, t)))
    assert counts == {"target": len(CAR_IMAGES), "random": len(COCO_IMAGES)}
    assert sorted(os.listdir(out)) == ["random", "target"]
    for cls, images in (("target", CAR_IMAGES), ("random", COCO_IMAGES)):
        expected = _flat(images)
        assert sorted(os.listdir(out / cls)) == sorted(expected)
        for name, data in expected.items():
            assert (out / cls / name).read_bytes() == data
    assert sorted(os.listdir(cache)) == ["cars_train.tgz", "val2017.zip"]
    assert sha((cache / "val2017.zip").read_bytes()) == sources["random"][1]
    assert seen and all(t is not None for _, t in seen)
    _assert_no_escape(tmp_path / "dataset")

    # Second run: archives come from the cache, no network; limit applies.
    n_requests = len(server.requests)
    counts = tutorial_dataset(out, cache_dir=cache, sources=sources, limit_per_class=2)
    assert counts == {"target": 2, "random": 2}
    assert len(os.listdir(out / "target")) == 2 and len(os.listdir(out / "random")) == 2
    assert len(server.requests) == n_requests


def test_tutorial_dataset_bad_checksum(served_archives, tmp_path):
    server, sources = served_archives
    sources = dict(sources, random=(sources["random"][0], "0" * 64))
    with pytest.raises(DownloadError) as exc:
        tutorial_dataset(tmp_path / "dataset", cache_dir=tmp_path / "cache", sources=sources)
    assert "0" * 64 in str(exc.value)
    assert not (tmp_path / "cache" / "val2017.zip").exists()
    assert not (tmp_path / "dataset" / "random").exists()


def test_tutorial_dataset_defaults_point_at_tutorial_urls():
    assert download.DEFAULT_SOURCES["target"] == (
        "http://ai.stanford.edu/~jkrause/car196/cars_train.tgz", None)
    assert download.DEFAULT_SOURCES["random"][0] == "http://images.cocodataset.org/zips/val2017.zip"


def test_cli(served_archives, tmp_path, capsys):
    server, sources = served_archives
    rc = download.main([
        str(tmp_path / "ds"), str(tmp_path / "cache"), "--limit", "1", "-q",
        "--target-url", sources["target"][0], "--target-sha256", sources["target"][1],
        "--random-url", sources["random"][0],
    ])
    assert rc == 0
    assert len(os.listdir(tmp_path / "ds" / "target")) == 1
    assert len(os.listdir(tmp_path / "ds" / "random")) == 1
    assert "target: 1 images" in capsys.readouterr().out
    rc = download.main([str(tmp_path / "ds2"), str(tmp_path / "cache2"), "-q",
                        "--target-url", server.url("/nope.tgz"),
                        "--random-url", sources["random"][0]])
    assert rc == 1
    assert "404" in capsys.readouterr().err


def test_tutorial_dataset_failed_download_keeps_previous_dataset(served_archives, tmp_path):
    server, sources = served_archives
    out, cache = tmp_path / "dataset", tmp_path / "cache"
    assert tutorial_dataset(out, cache_dir=cache, sources=sources,
                            limit_per_class=1) == {"target": 1, "random": 1}
    before = {cls: sorted(os.listdir(out / cls)) for cls in ("target", "random")}
    broken = dict(sources, target=(server.url("/gone.tgz"), None))
    with pytest.raises(DownloadError) as exc:
        tutorial_dataset(out, cache_dir=cache, sources=broken)
    assert "404" in str(exc.value)
    assert {cls: sorted(os.listdir(out / cls)) for cls in ("target", "random")} == before


# --------------------------------------------------------------------------
# Progress (tqdm)
# --------------------------------------------------------------------------

class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def _progress_output(monkeypatch, server, tmp_path, tty):
    server.files["/big.bin"] = PAYLOAD
    stream = _Stream(tty)
    monkeypatch.setattr(download.sys, "stderr", stream)
    fetch(server.url("/big.bin"), tmp_path / "big.bin", sha256=sha(PAYLOAD), show_progress=True)
    return stream.getvalue()


def test_progress_in_a_log_is_a_few_whole_lines_with_size_and_rate(monkeypatch, server, tmp_path):
    monkeypatch.setattr(download, "LOG_PROGRESS_INTERVAL", 3600.0)
    out = _progress_output(monkeypatch, server, tmp_path, tty=False)
    lines = out.splitlines()
    assert "\r" not in out and 1 <= len(lines) <= 3, out      # not one line per 64 KiB chunk
    last = lines[-1]
    assert last.startswith("big.bin:") and "100%" in last and "293k/293k" in last and "B/s" in last


def test_progress_on_a_terminal_redraws_in_place_with_eta(monkeypatch, server, tmp_path):
    server.drop("/big.bin", after=100_000)          # a resume continues the same bar
    out = _progress_output(monkeypatch, server, tmp_path, tty=True)
    assert out.count("\r") >= 2 and "100%" in out and "293k/293k" in out
    assert re.search(r"<\d\d:\d\d", out)            # tqdm's [elapsed<remaining] time


def test_progress_is_off_unless_asked_for(monkeypatch, server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    stream = _Stream(tty=True)
    monkeypatch.setattr(download.sys, "stderr", stream)
    fetch(server.url("/f.bin"), tmp_path / "f.bin")
    assert stream.getvalue() == ""


def test_transient_status_retries_honour_retry_after(monkeypatch, server, tmp_path):
    """urllib3's Retry waits what a 503's Retry-After asks for (here 1 s) before the next request."""
    server.files["/f.bin"] = PAYLOAD
    server.failures["/f.bin"] = 1
    server.retry_after = "1"
    start = time.monotonic()
    fetch(server.url("/f.bin"), tmp_path / "f.bin", sha256=sha(PAYLOAD), retries=1)
    assert time.monotonic() - start >= 0.9
    assert server.statuses == [503, 200]
