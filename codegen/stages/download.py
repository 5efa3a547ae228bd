"""Download and unpack the car / not-car dataset used by the TVM
"Training Vision Models for microTVM on Arduino" tutorial.

The tutorial builds a two-class dataset:

* ``target`` -- photos of cars, from the Stanford Cars training archive;
* ``random`` -- everything else, from the COCO 2017 validation archive.

This module downloads both archives and lays the images out as
``<out>/target/*.jpg`` and ``<out>/random/*.jpg``, which is the directory
layout ``tf.keras.utils.image_dataset_from_directory`` expects.

HTTP is requests' (with urllib3's ``Retry`` for connection errors, transient
statuses, ``Retry-After`` and exponential backoff); progress is a tqdm bar
with rate and ETA.  What is ours is what those libraries leave to the caller:
resuming a ``.part`` file with ``Range`` (and noticing a server that ignores
it), retrying a connection that drops mid-body, never trusting a partial
file, the checksum, and one error message that says what to do.  requests
and tqdm are imported inside the functions that use them, so importing this
module from an SCons build stays cheap.

Command line::

    python -m codegen.stages.download OUT_DIR CACHE_DIR [--limit N]
"""

from __future__ import annotations

import argparse
import hashlib
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
import urllib.parse
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
USER_AGENT = "tinyml-scons-download/2.0 (python-requests)"

#: urllib3's backoff: retry n waits ``RETRY_BACKOFF * 2 ** (n - 1)`` seconds,
#: at most ``MAX_BACKOFF``.  Module-level so tests can set it to 0.
RETRY_BACKOFF = 0.25
MAX_BACKOFF = 8.0

#: Seconds between progress lines when stderr is not a terminal (a CI log):
#: a few dozen lines for a multi-GB archive instead of one per chunk.
LOG_PROGRESS_INTERVAL = 20.0

# HTTP statuses worth retrying; every other error status fails at once.
_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

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
    """Internal: an attempt failed in a way that is worth retrying.

    ``attempts`` is how many requests the failure took (urllib3 may have
    retried a transient status or connection error inside one call)."""

    def __init__(self, message, attempts=1):
        super().__init__(message)
        self.attempts = attempts


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


def _session(retries):
    """A requests session whose urllib3 pool retries connection errors and
    transient statuses up to ``retries`` times, with backoff and Retry-After.
    After the last retry the final response is returned, not raised, so its
    status can be reported."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=max(0, retries), status_forcelist=_TRANSIENT_STATUSES, allowed_methods={"GET"},
                  backoff_factor=RETRY_BACKOFF, backoff_max=MAX_BACKOFF, raise_on_status=False,
                  respect_retry_after_header=True)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # identity: the bytes on disk are the bytes the server's Content-Length and Range count
    session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    return session


def _attempt(url, part, timeout, retries, progress):
    """One GET (plus urllib3's own retries), appending to / rewriting ``part``.

    Returns (final size of ``part``, requests made).  Raises _Transient for
    retryable failures and DownloadError otherwise.
    """
    import requests
    import urllib3

    offset = _file_size(part)
    with _session(retries) as session:
        try:
            resp = session.get(url, headers={"Range": f"bytes={offset}-"} if offset else {}, stream=True,
                               timeout=timeout)
        except (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidURL) as e:
            raise DownloadError(url, f"invalid URL ({e})", "Pass an http:// or https:// URL") from None
        except requests.exceptions.RequestException as e:
            # urllib3 already retried: the remaining budget is spent
            raise _Transient(f"connection failed ({_reason(e)})", attempts=retries + 1) from None

        with resp:
            retried = getattr(getattr(resp.raw, "retries", None), "history", ()) or ()
            attempts = 1 + len(retried)
            status = resp.status_code
            if status == 416 and offset:
                # Our .part is at least as large as the file.
                m = _UNSATISFIED_RANGE_RE.match(resp.headers.get("Content-Range", ""))
                if m and int(m.group(1)) == offset:
                    log.debug("%s: partial file is already complete", url)
                    return offset, attempts
                log.warning("%s: server rejected resume at byte %d; restarting", url, offset)
                _unlink(part)
                raise _Restart(f"HTTP 416 for resume at byte {offset}", attempts)
            if status in _TRANSIENT_STATUSES:
                raise _Transient(f"HTTP {status} {resp.reason}", attempts)   # urllib3's retries are spent
            if status >= 400:
                raise DownloadError(url, f"HTTP error {status} ({resp.reason})", _http_error_advice(status))
            length = resp.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None

            if status == 206 and offset:
                cr = _parse_content_range(resp.headers.get("Content-Range"))
                if cr is None or cr[0] != offset:
                    # Resumed somewhere we did not ask for: start over.
                    log.warning("%s: unexpected Content-Range %r; restarting", url, resp.headers.get("Content-Range"))
                    _unlink(part)
                    raise _Restart("server answered the resume with the wrong range", attempts)
                total = cr[2] if cr[2] is not None else (offset + length if length is not None else None)
                mode, done = "ab", offset
            elif status == 200:
                if offset:
                    log.info("%s: server ignored the Range request; restarting from zero", url)
                total, mode, done = length, "wb", 0
            else:
                raise DownloadError(url, f"unexpected HTTP status {status}", _http_error_advice(status))

            if progress is not None:
                progress(done, total)
            try:
                out = open(part, mode)
            except OSError as e:
                raise DownloadError(url, f"cannot write {part} ({e})",
                                    "Check permissions of the destination directory") from None
            with out:
                while True:
                    try:
                        # raw bytes, as the server counts them for Content-Length and Range; read1 returns what
                        # has arrived, so a timeout loses nothing already received
                        block = resp.raw.read1(CHUNK_SIZE, decode_content=False)
                    except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as e:
                        raise _Transient(f"connection dropped after {done} bytes ({_reason(e)})", attempts) from None
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
            raise _Transient(f"connection closed after {done} of {total} bytes", attempts)
        return done, attempts


def _reason(error):
    """The cause of a requests error (urllib3's), without its "Max retries exceeded with url" wrapping."""
    first = error.args[0] if error.args else None
    if isinstance(first, str):           # urllib3's ProtocolError: (message, cause)
        return first
    return str(getattr(first, "reason", None) or error)


class _ProgressBar:
    """A tqdm bar fed with fetch's ``(done, total)`` calls: bytes, rate and ETA.

    On a terminal it redraws in place; elsewhere (a CI log, a file) it writes
    a whole line every LOG_PROGRESS_INTERVAL seconds and a last one at the end.
    The bar is opened on the first call, at the resumed offset, so resumed
    bytes do not count towards the rate."""

    def __init__(self, desc, stream=None):
        self.desc = desc
        self.stream = stream or sys.stderr
        self.bar = None

    def __call__(self, done, total):
        from tqdm import tqdm

        if self.bar is None:
            tty = hasattr(self.stream, "isatty") and self.stream.isatty()
            self.bar = tqdm(desc=self.desc, total=total, initial=done, unit="B", unit_scale=True,
                            unit_divisor=1024, file=self.stream if tty else _LineStream(self.stream),
                            mininterval=0.2 if tty else LOG_PROGRESS_INTERVAL, dynamic_ncols=tty,
                            # tqdm's monitor thread also redraws a bar idle for maxinterval seconds
                            maxinterval=10.0 if tty else LOG_PROGRESS_INTERVAL,
                            ncols=None if tty else 100, disable=False, leave=True)
            return
        if done < self.bar.n or total != self.bar.total:   # restarted from zero, or a new total
            self.bar.reset(total=total)
            self.bar.update(done)
            return
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _LineStream:
    """tqdm's output as whole lines: it redraws with carriage returns, which a
    log shows as one ever-growing line (or thousands of lines)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self):
        self.stream.flush()


def fetch(url, dest, *, sha256=None, timeout=30, retries=3, progress=None, show_progress=False):
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
    * ``progress(done_bytes, total_bytes_or_None)`` is called as data arrives;
      ``show_progress`` also draws a tqdm bar on stderr.

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
        log.warning("%s exists but its sha256 is %s, not %s; downloading again", dest, actual, sha256)

    parent = os.path.dirname(os.path.abspath(dest))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise DownloadError(url, f"cannot create directory {parent} ({e})", "Choose a writable destination") from None

    log.info("downloading %s -> %s", url, dest)
    bar = _ProgressBar(os.path.basename(dest)) if show_progress else None
    callbacks = [c for c in (bar, progress) if c is not None]

    def report(done, total):
        for callback in callbacks:
            callback(done, total)
    try:
        _download_with_retries(url, part, timeout, retries, report if callbacks else None)
    finally:
        if bar is not None:
            bar.close()

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


def _download_with_retries(url, part, timeout, retries, progress):
    """Calls _attempt until ``part`` is complete, or until ``retries + 1``
    consecutive requests made no progress (urllib3's retries inside one call
    count too: each call is given only the budget that is left)."""
    failures = 0
    free_restart_used = False
    # Progress means the .part file grew past its largest size so far; this
    # also terminates when a server ignoring Range keeps dropping early.
    high_water = _file_size(part)
    while True:
        try:
            _attempt(url, part, timeout, retries - failures, progress)
            return
        except _Transient as e:
            after = _file_size(part)
            made_progress = after > high_water
            high_water = max(high_water, after)
            if isinstance(e, _Restart):
                high_water = after  # the unusable .part was removed
                if not free_restart_used:  # one free restart
                    free_restart_used = True
                    continue
            failures = 0 if made_progress else failures + e.attempts
            if failures > retries:
                raise DownloadError(
                    url,
                    f"download failed after {failures} attempt{'s' * (failures != 1)} without progress: {e}",
                    f"Check your network connection and run again; the "
                    f"{after} bytes received so far are kept in {part} and "
                    f"the download will resume" if after else
                    "Check your network connection and the URL, then run again",
                ) from None
            delay = min(MAX_BACKOFF, RETRY_BACKOFF * 2 ** max(0, failures - 1)) if failures else 0
            log.warning("%s: %s; retrying%s", url, e, f" in {delay:.2f}s" if delay else "")
            if delay:
                time.sleep(delay)


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
                     progress=None, show_progress=False):
    """Build the tutorial's car / not-car dataset.

    Downloads the archives (Stanford Cars for ``target``, COCO val2017 for
    ``random`` by default) into ``cache_dir`` -- reusing them when already
    present -- and extracts them into ``out_dir/target/`` and
    ``out_dir/random/``.  ``sources`` maps class names to ``(url, sha256)``
    and overrides the defaults per class.  ``limit_per_class`` caps the number
    of images per class (deterministic subset).  ``progress`` is passed to
    :func:`fetch` as ``progress(done_bytes, total_bytes_or_None)``;
    ``show_progress`` draws a tqdm bar per archive on stderr.

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
                                           sha256=sha256, progress=progress,
                                           show_progress=show_progress))

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

def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m codegen.stages.download",
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
            sources=sources, show_progress=not args.quiet)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, n in sorted(counts.items()):
        print(f"{name}: {n} images in {os.path.join(args.out_dir, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
