"""Download and unpack the car / not-car dataset used by the TVM
"Training Vision Models for microTVM on Arduino" tutorial.

The tutorial builds a two-class dataset:

* ``target`` -- photos of cars, from the Stanford Cars training archive;
* ``random`` -- everything else, from the COCO 2017 validation archive.

This module downloads both archives (resumably, with retries and optional
SHA-256 verification) and lays the images out as ``<out>/target/*.jpg`` and
``<out>/random/*.jpg``, which is the directory layout
``tf.keras.utils.image_dataset_from_directory`` expects.

Only the standard library is used, so the module can be imported from an
SCons build (or anywhere else) without pulling in SCons, numpy or TensorFlow.

Command line::

    python -m codegen.download OUT_DIR CACHE_DIR [--limit N]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import posixpath
import random
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib

try:  # the project's "problem a user can fix" base class, printed by the SCons glue
    from ..errors import PipelineError as _ErrorBase
except ImportError:  # run as a plain script (python codegen/stages/download.py)
    _ErrorBase = Exception

__all__ = [
    "DownloadError",
    "fetch",
    "extract_class_folder",
    "tutorial_dataset",
    "CARS_URL",
    "COCO_URL",
    "DEFAULT_SOURCES",
    "IMAGE_EXTENSIONS",
    "main",
]

log = logging.getLogger(__name__)

CARS_URL = "http://ai.stanford.edu/~jkrause/car196/cars_train.tgz"
COCO_URL = "http://images.cocodataset.org/zips/val2017.zip"

#: class name -> (url, sha256 or None).  The checksums are not pinned because
#: they are not published next to the archives; pass your own via ``sources``.
DEFAULT_SOURCES = {
    "target": (CARS_URL, None),
    "random": (COCO_URL, None),
}

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

CHUNK_SIZE = 1 << 16
USER_AGENT = "codegen-download/1.0 (+python urllib)"

#: Seconds to wait before retry number n is ``RETRY_BACKOFF * 2 ** (n - 1)``,
#: capped at ``MAX_BACKOFF``.  Module-level so tests can set it to 0.
RETRY_BACKOFF = 0.25
MAX_BACKOFF = 8.0

# HTTP statuses worth retrying; every other error status fails at once.
_TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}

_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)
_UNSATISFIED_RANGE_RE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.I)


class DownloadError(_ErrorBase):
    """A download or archive extraction failed.

    The message always names the URL (or archive), what went wrong and what
    the user can do about it.  A subclass of ``codegen.errors.PipelineError``.
    """

    def __init__(self, url, problem, advice=None):
        self.url = url
        self.problem = problem
        self.advice = advice
        msg = f"{url}: {problem}"
        if advice:
            msg += f". {advice}"
        super().__init__(msg)


class _Transient(Exception):
    """Internal: an attempt failed in a way that is worth retrying."""


class _Restart(_Transient):
    """Internal: the .part file was unusable and has been deleted."""


# --------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------

def _sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_SIZE), b""):
            h.update(block)
    return h.hexdigest()


def _file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _parse_content_range(value):
    """'bytes 10-99/100' -> (10, 99, 100); total is None for '*'."""
    m = _CONTENT_RANGE_RE.match(value or "")
    if not m:
        return None
    start, end, total = m.groups()
    return int(start), int(end), (None if total == "*" else int(total))


def _http_error_advice(status):
    if status == 404:
        return "The file is not at that address; check the URL or pass another source"
    if status in (401, 403):
        return "The server refused access; check the URL or download the file manually"
    if status in _TRANSIENT_STATUSES:
        return "The server is having trouble; try again later"
    return "Check the URL, or download the file manually and place it at the destination"


def _attempt(url, part, timeout, progress):
    """One HTTP request, appending to / rewriting ``part``.

    Returns the final size of ``part``.  Raises _Transient for retryable
    failures and DownloadError otherwise.
    """
    offset = _file_size(part)
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)

    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        status = e.code
        content_range = e.headers.get("Content-Range", "") if e.headers else ""
        e.close()
        if status == 416 and offset:
            # Our .part is at least as large as the file.
            m = _UNSATISFIED_RANGE_RE.match(content_range)
            if m and int(m.group(1)) == offset:
                log.debug("%s: partial file is already complete", url)
                return offset
            log.warning("%s: server rejected resume at byte %d; restarting", url, offset)
            _unlink(part)
            raise _Restart(f"HTTP 416 for resume at byte {offset}")
        if status in _TRANSIENT_STATUSES:
            raise _Transient(f"HTTP {status} {e.reason}")
        raise DownloadError(url, f"HTTP error {status} ({e.reason})",
                            _http_error_advice(status)) from None
    except ValueError as e:  # unknown url type etc.
        raise DownloadError(url, f"invalid URL ({e})",
                            "Pass an http://, https:// or file:// URL") from None
    except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
        raise _Transient(f"connection failed ({e})")

    with resp:
        status = getattr(resp, "status", None) or resp.getcode() or 200
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None

        if status == 206 and offset:
            cr = _parse_content_range(resp.headers.get("Content-Range"))
            if cr is None or cr[0] != offset:
                # Resumed somewhere we did not ask for: start over.
                log.warning("%s: unexpected Content-Range %r; restarting",
                            url, resp.headers.get("Content-Range"))
                _unlink(part)
                raise _Restart("server answered the resume with the wrong range")
            total = cr[2] if cr[2] is not None else (
                offset + length if length is not None else None)
            mode = "ab"
            done = offset
        elif status == 200 or status is None:
            if offset:
                log.info("%s: server ignored the Range request; restarting from zero", url)
            total = length
            mode = "wb"
            done = 0
        else:
            raise DownloadError(url, f"unexpected HTTP status {status}",
                                _http_error_advice(status))

        if progress is not None:
            progress(done, total)
        try:
            out = open(part, mode)
        except OSError as e:
            raise DownloadError(url, f"cannot write {part} ({e})",
                                "Check permissions of the destination directory") from None
        # read1 returns whatever has arrived, so little is lost on a timeout.
        read = getattr(resp, "read1", None) or resp.read
        with out:
            while True:
                try:
                    block = read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as e:
                    raise _Transient(f"connection dropped after {done} bytes ({e!r})")
                if not block:
                    break
                try:
                    out.write(block)
                except OSError as e:
                    raise DownloadError(url, f"cannot write {part} ({e})",
                                        "Check free disk space and permissions") from None
                done += len(block)
                if progress is not None:
                    progress(done, total)

    if total is not None and done < total:
        raise _Transient(f"connection closed after {done} of {total} bytes")
    if total is not None and done > total:
        _unlink(part)
        raise _Transient(f"received {done} bytes but expected {total}")
    return done


def fetch(url, dest, *, sha256=None, timeout=30, retries=3, progress=None):
    """Download ``url`` to ``dest`` and return ``dest``.

    * The data is streamed to ``dest + '.part'``; if that file already exists
      the download resumes from its end with an HTTP ``Range`` request.  A
      server that ignores ``Range`` (answers 200) makes the download restart
      from zero.
    * Dropped connections, timeouts and transient HTTP errors (5xx, 429, 408)
      are retried, resuming where the data stopped.  ``retries`` is the number
      of *consecutive* failed attempts that made no progress allowed before
      giving up, so a connection that keeps dropping but keeps delivering data
      still finishes.  When giving up, the ``.part`` file is kept so a later
      call resumes it.
    * If ``sha256`` is given the finished file is verified; on mismatch the
      ``.part`` file is deleted and :class:`DownloadError` names the expected
      and actual digests.
    * The complete file is renamed atomically onto ``dest``.  If ``dest``
      already exists and matches ``sha256`` (or no ``sha256`` is given) no
      network access happens at all.
    * ``progress(done_bytes, total_bytes_or_None)`` is called as data arrives.

    Raises :class:`DownloadError` for HTTP errors (e.g. 404, with the status
    in the message), exhausted retries and checksum mismatches.
    """
    dest = os.fspath(dest)
    if sha256 is not None:
        sha256 = sha256.strip().lower()
    part = dest + ".part"

    if os.path.isfile(dest):
        if sha256 is None:
            log.debug("%s already present, not downloading", dest)
            return dest
        actual = _sha256_of(dest)
        if actual == sha256:
            log.debug("%s already present with the right checksum", dest)
            return dest
        log.warning("%s exists but its sha256 is %s, not %s; downloading again",
                    dest, actual, sha256)

    parent = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise DownloadError(url, f"cannot create directory {parent} ({e})",
                            "Choose a writable destination") from None

    log.info("downloading %s -> %s", url, dest)
    failures = 0
    free_restart_used = False
    # Progress means the .part file grew past its largest size so far; this
    # also terminates when a server ignoring Range keeps dropping early.
    high_water = _file_size(part)
    while True:
        try:
            _attempt(url, part, timeout, progress)
            break
        except _Transient as e:
            after = _file_size(part)
            made_progress = after > high_water
            high_water = max(high_water, after)
            if isinstance(e, _Restart):
                high_water = after  # the unusable .part was removed
                if not free_restart_used:  # one free restart
                    free_restart_used = True
                    continue
            failures = 0 if made_progress else failures + 1
            if failures > retries:
                raise DownloadError(
                    url,
                    f"download failed after {retries + 1} attempts without progress: {e}",
                    f"Check your network connection and run again; the "
                    f"{after} bytes received so far are kept in {part} and "
                    f"the download will resume" if after else
                    "Check your network connection and the URL, then run again",
                ) from None
            delay = min(MAX_BACKOFF, RETRY_BACKOFF * 2 ** max(0, failures - 1)) if failures else 0
            log.warning("%s: %s; retrying%s", url, e,
                        f" in {delay:.2f}s" if delay else "")
            if delay:
                time.sleep(delay)

    if sha256 is not None:
        actual = _sha256_of(part)
        if actual != sha256:
            _unlink(part)
            raise DownloadError(
                url,
                f"checksum mismatch: expected sha256 {sha256}, got {actual}",
                "The partial file was deleted; run again, and if it keeps "
                "failing the file on the server changed or the checksum is wrong",
            )

    os.replace(part, dest)
    log.info("saved %s (%d bytes)", dest, _file_size(dest))
    return dest


# --------------------------------------------------------------------------
# extract_class_folder
# --------------------------------------------------------------------------

def _safe_member_name(name):
    """Normalised relative member path, or None if it is unsafe/unwanted."""
    name = name.replace("\\", "/")
    if not name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    if "__MACOSX" in parts:
        return None
    base = parts[-1]
    if base.startswith("."):  # hidden files, AppleDouble "._x.jpg"
        return None
    if not base.lower().endswith(IMAGE_EXTENSIONS):
        return None
    return "/".join(parts)


def _archive_kind(archive):
    lower = archive.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith((".tgz", ".tar.gz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    # Unknown suffix: sniff the content.
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    return None


def _flat_names(member_names):
    """Map each member path to a unique flat file name (deterministic)."""
    used = set()
    result = {}
    for name in sorted(member_names):
        base = posixpath.basename(name)
        stem, ext = posixpath.splitext(base)
        candidate, n = base, 1
        while candidate.lower() in used:
            candidate = f"{stem}_{n}{ext}"
            n += 1
        used.add(candidate.lower())
        result[name] = candidate
    return result


def _select(names, limit, seed):
    names = sorted(names)
    if limit is None or limit >= len(names):
        return names
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return sorted(random.Random(seed).sample(names, limit))


def extract_class_folder(archive, out_dir, class_name, *, limit=None, seed=0):
    """Extract the images of ``archive`` flat into ``out_dir/class_name/``.

    ``archive`` may be a ``.tgz``/``.tar.gz`` (or other tar) or ``.zip``.
    Every regular member ending in .jpg/.jpeg/.png (case-insensitive, at any
    depth) is written as ``out_dir/class_name/<basename>``; clashing base
    names get a ``_1``, ``_2``... suffix.  Members with absolute paths or
    ``..`` components, links, devices, hidden files and ``__MACOSX`` entries
    are skipped, so nothing can be written outside the class folder.

    With ``limit`` only a deterministic random subset (``random.Random(seed)``)
    of that many images is extracted.

    The images are extracted into a temporary directory beside the class
    folder which is then renamed into place, replacing any previous folder, so
    a failure never leaves a half-filled class folder.  Returns the sorted
    list of extracted file paths.
    """
    archive = os.fspath(archive)
    out_dir = os.fspath(out_dir)
    if not class_name or "/" in class_name or "\\" in class_name or class_name in (".", ".."):
        raise ValueError(f"invalid class name {class_name!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if not os.path.isfile(archive):
        raise DownloadError(archive, "archive not found", "Download it first")

    kind = _archive_kind(archive)
    if kind is None:
        raise DownloadError(archive, "not a tar or zip archive",
                            "Delete it so it is downloaded again, or check the URL")

    os.makedirs(out_dir, exist_ok=True)
    final = os.path.join(out_dir, class_name)
    tmp = tempfile.mkdtemp(prefix=f".{class_name}.", suffix=".tmp", dir=out_dir)
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only
        try:
            if kind == "zip":
                written = _extract_zip(archive, tmp, limit, seed)
            else:
                written = _extract_tar(archive, tmp, limit, seed)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
            raise DownloadError(archive, f"corrupt or truncated archive ({e})",
                                "Delete the file so it is downloaded again") from None
        except RuntimeError as e:  # e.g. encrypted zip member
            raise DownloadError(archive, f"cannot extract ({e})",
                                "Use an unencrypted archive") from None

        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(os.path.join(final, name) for name in written)


def _replace_dir(src, dst):
    """Move directory ``src`` onto ``dst``, replacing any existing ``dst``."""
    if os.path.lexists(dst):
        trash = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.", suffix=".old",
                                 dir=os.path.dirname(dst))
        old = os.path.join(trash, "old")
        os.rename(dst, old)
        try:
            os.rename(src, dst)
        except BaseException:
            os.rename(old, dst)  # put the previous folder back
            shutil.rmtree(trash, ignore_errors=True)
            raise
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(src, dst)


def _extract_tar(archive, tmp, limit, seed):
    with tarfile.open(archive, "r:*") as tar:
        members = {}
        for m in tar.getmembers():
            if not m.isreg():  # skips dirs, symlinks, hardlinks, devices
                continue
            name = _safe_member_name(m.name)
            if name is not None and name not in members:
                members[name] = m
        chosen = _select(members, limit, seed)
        flat = _flat_names(members)
        # Read in archive order so compressed streams are only read forwards.
        written = []
        for name in sorted(chosen, key=lambda n: members[n].offset_data):
            src = tar.extractfile(members[name])
            target = os.path.join(tmp, flat[name])
            with src, open(target, "xb") as out:
                shutil.copyfileobj(src, out, CHUNK_SIZE)
            written.append(flat[name])
    return written


def _extract_zip(archive, tmp, limit, seed):
    with zipfile.ZipFile(archive) as zf:
        members = {}
        for info in zf.infolist():
            if info.is_dir():
                continue
            mode = (info.external_attr >> 16) & 0xFFFF
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):  # symlinks etc.
                continue
            name = _safe_member_name(info.filename)
            if name is not None and name not in members:
                members[name] = info
        chosen = _select(members, limit, seed)
        flat = _flat_names(members)
        written = []
        for name in chosen:
            target = os.path.join(tmp, flat[name])
            with zf.open(members[name]) as src, open(target, "xb") as out:
                shutil.copyfileobj(src, out, CHUNK_SIZE)
            written.append(flat[name])
    return written


# --------------------------------------------------------------------------
# tutorial_dataset
# --------------------------------------------------------------------------

def _archive_filename(url, class_name):
    path = urllib.parse.urlsplit(url).path
    name = posixpath.basename(path)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or f"{class_name}.archive"


def tutorial_dataset(out_dir, *, cache_dir, limit_per_class=None, sources=None,
                     progress=None):
    """Build the tutorial's car / not-car dataset.

    Downloads the archives (Stanford Cars for ``target``, COCO val2017 for
    ``random`` by default) into ``cache_dir`` -- reusing them when already
    present -- and extracts them into ``out_dir/target/`` and
    ``out_dir/random/``.  ``sources`` maps class names to ``(url, sha256)``
    and overrides the defaults per class.  ``limit_per_class`` caps the number
    of images per class (deterministic subset).  ``progress`` is passed to
    :func:`fetch` as ``progress(done_bytes, total_bytes_or_None)``.

    Returns ``{"target": n_images, "random": m_images}``.
    """
    out_dir = os.fspath(out_dir)
    cache_dir = os.fspath(cache_dir)
    merged = dict(DEFAULT_SOURCES)
    if sources:
        merged.update(sources)

    # Download everything first so a failed download leaves any previously
    # built dataset untouched instead of half rebuilt.
    archives = {}
    used_names = set()
    for class_name in sorted(merged):
        url, sha256 = merged[class_name]
        filename = _archive_filename(url, class_name)
        if filename in used_names:
            filename = f"{class_name}-{filename}"
        used_names.add(filename)
        archives[class_name] = (url, fetch(url, os.path.join(cache_dir, filename),
                                           sha256=sha256, progress=progress))

    counts = {}
    for class_name, (url, archive) in archives.items():
        log.info("extracting %s into %s", archive, os.path.join(out_dir, class_name))
        files = extract_class_folder(archive, out_dir, class_name,
                                     limit=limit_per_class, seed=0)
        if not files:
            raise DownloadError(url, f"archive contains no {'/'.join(IMAGE_EXTENSIONS)} images",
                                "Check that the URL points to an image archive")
        counts[class_name] = len(files)
    return counts


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

class _ProgressPrinter:
    def __init__(self, stream):
        self.stream = stream
        self.last = -1.0
        self.last_done = None

    def __call__(self, done, total):
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self.last < 0.5:
            return
        self.last = now
        mb = done / 1e6
        if total:
            text = f"\r  {mb:9.1f} / {total / 1e6:.1f} MB ({100 * done / total:5.1f}%)"
        else:
            text = f"\r  {mb:9.1f} MB"
        self.stream.write(text + ("\n" if finished else ""))
        self.stream.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m codegen.download",
        description="Download the Stanford Cars and COCO val2017 archives and "
                    "build the car (target) / not-car (random) image folders "
                    "used by the TVM microTVM Arduino tutorial.")
    parser.add_argument("out_dir", help="dataset directory to create (gets target/ and random/)")
    parser.add_argument("cache_dir", help="directory where the downloaded archives are kept")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many images per class (deterministic subset)")
    parser.add_argument("--target-url", default=CARS_URL, help="archive of car images")
    parser.add_argument("--target-sha256", default=None)
    parser.add_argument("--random-url", default=COCO_URL, help="archive of non-car images")
    parser.add_argument("--random-sha256", default=None)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 0:
        parser.error("--limit must be >= 0")

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    sources = {
        "target": (args.target_url, args.target_sha256),
        "random": (args.random_url, args.random_sha256),
    }
    try:
        counts = tutorial_dataset(
            args.out_dir, cache_dir=args.cache_dir, limit_per_class=args.limit,
            sources=sources,
            progress=None if args.quiet else _ProgressPrinter(sys.stderr))
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, n in sorted(counts.items()):
        print(f"{name}: {n} images in {os.path.join(args.out_dir, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
