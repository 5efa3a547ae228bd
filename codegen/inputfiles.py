"""Opening the files a user hands the build (MODEL=, INPUTS=, LABELS=, REP_DATA=, DATA= images, tinyml.ini):
regular files only, and reads bounded by a size limit.

Those files may come from someone else. Opening a FIFO for reading blocks until a writer appears (forever, in
a build), a character device (`/dev/zero`) never ends, a socket cannot be read at all; SCons would hash such a
"source" at SConstruct time and wait with it. So every path is checked with stat() before use, and the file is
opened non-blocking and checked again on the open descriptor (the path may have been swapped in between).
"""
import errno
import os
import stat

from .errors import PipelineError


def _kind(mode):
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a regular file"


def not_regular(path):
    """None when `path` is a regular file (after symlinks); else what it is, for a message ("a FIFO (named
    pipe)", "a socket", "a folder", "a symbolic link loop", "missing", ...)."""
    try:
        return _kind(os.stat(path).st_mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop"
        if e.errno == errno.ENOENT:
            return "a broken symbolic link" if os.path.islink(path) else "missing"
        return f"unreadable ({e.strerror})"
    except ValueError:          # an embedded NUL byte in the name
        return "not a valid file name"


def is_regular(path):
    return not_regular(path) is None


def open_regular(path, what=None):
    """A binary file object for `path`, opened without blocking; PipelineError (naming `what`, default the
    path) when it is not a regular file or cannot be opened. The caller closes it."""
    what = what or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        kind = not_regular(path)
        raise PipelineError(f"{what}: cannot open it ({kind or e.strerror}); give a readable regular file") \
            from None
    except ValueError:
        raise PipelineError(f"{what}: not a valid file name") from None
    kind = _kind(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise PipelineError(f"{what}: is {kind}, not a regular file; give a regular file")
    return os.fdopen(fd, "rb")


def read_bounded(path, limit, what=None, hint=""):
    """The bytes of regular file `path`; PipelineError when it is larger than `limit` bytes (checked before
    reading, and again while reading: a file that grows is not read past the limit)."""
    what = what or str(path)
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        raise PipelineError(f"{what}: {max(size, len(data)):,} bytes, more than the {limit:,} bytes allowed"
                            + (f"; {hint}" if hint else ""))
    return data


def load_npy(path, max_bytes, what=None):
    """numpy.load of a regular .npy file (no pickles) whose header is checked first: an array of at most
    `max_bytes` that the file really holds. A 100-byte file whose header claims 80 GiB would otherwise be
    allocated before numpy notices the file is short. PipelineError naming `what` (default the path)."""
    import numpy as np

    what = what or str(path)
    fmt = np.lib.format
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(f)
            count = 1
            for d in shape:
                count *= int(d)
            nbytes = count * dtype.itemsize
        except (ValueError, TypeError, OSError, EOFError, SyntaxError, OverflowError) as e:
            raise PipelineError(f"{what}: not a readable .npy file ({e}); write it with numpy.save") from None
        if dtype.hasobject:
            raise PipelineError(f"{what}: holds Python objects (a pickle), which are not loaded; save a numeric "
                                "array with numpy.save")
        if nbytes > max_bytes:
            raise PipelineError(f"{what}: its header declares an array of shape {list(shape)} ({nbytes:,} bytes), "
                                f"more than the {max_bytes:,} bytes allowed here; give a smaller array")
        if nbytes > size - f.tell():
            raise PipelineError(f"{what}: its header declares {nbytes:,} bytes of data, but the file holds "
                                f"{size - f.tell():,} (truncated?); write it again with numpy.save")
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise PipelineError(f"{what}: not a readable .npy file ({e}); write it with numpy.save") from None
