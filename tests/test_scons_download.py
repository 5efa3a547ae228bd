"""`scons download` end to end against an HTTP server on 127.0.0.1, then the downloaded folders as DATA=."""
import functools
import http.server
import io
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from helpers import built_stages, run_scons


def _png(seed):
    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(seed).randint(0, 255, (40, 60, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    with tarfile.open(root / "cars_train.tgz", "w:gz") as tar:
        for i in range(4):
            data = _png(i)
            info = tarfile.TarInfo(f"cars_train/{i:05d}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(root / "val2017.zip", "w") as z:
        for i in range(5):
            z.writestr(f"val2017/{i:012d}.png", _png(100 + i))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_scons_download_then_train_on_it(served, tmp_path):
    out = tmp_path / "tutorial"
    urls = {"CARS_URL": f"{served}/cars_train.tgz", "COCO_URL": f"{served}/val2017.zip"}
    proc = run_scons(tmp_path / "build", "download", DOWNLOAD_DIR=str(out), **urls)
    assert "target: 4 images" in proc.stdout and "random: 5 images" in proc.stdout
    # tqdm's progress on stderr, one finished line per archive (stderr is a pipe here, not a terminal)
    finished = [line for line in proc.stderr.splitlines() if "100%" in line and "B/s" in line]
    assert [line.split(":")[0] for line in finished] == ["val2017.zip", "cars_train.tgz"], proc.stderr
    assert len(list((out / "target").iterdir())) == 4 and len(list((out / "random").iterdir())) == 5
    proc = run_scons(tmp_path / "build", "dataset", DATA=str(out))
    assert built_stages(proc.stdout) == ["Packing dataset"]
    assert (tmp_path / "build" / "nano33ble" / "heldout" / "target.png").is_file()


def test_scons_download_404_is_one_clear_error(served, tmp_path):
    proc = run_scons(tmp_path / "build", "download", check=False, DOWNLOAD_DIR=str(tmp_path / "t"),
                     CARS_URL=f"{served}/missing.tgz", COCO_URL=f"{served}/val2017.zip")
    assert proc.returncode != 0
    assert "404" in proc.stderr and "missing.tgz" in proc.stderr
    assert not (tmp_path / "t" / "target").exists()
