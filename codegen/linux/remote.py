"""Upload a bundle to a Linux board over ssh (rsync, or scp where rsync is missing) and run it there.

The board keeps the bundle's content hash in REMOTE_DIR/.tinyml-bundle.sha256, written only after a complete
copy: an upload of the same bundle is skipped (FORCE=1 copies anyway), an interrupted one is redone. ssh runs
in batch mode (no password or host-key prompts): an unknown or changed host key, a refused login or an
unreachable host is one error line saying what to do.
"""
import os
import shutil
import subprocess

from .. import escape
from .. import proc as external
from ..errors import PipelineError
from . import bundle as bundlemod

HASH_FILE = ".tinyml-bundle.sha256"
CONNECT_TIMEOUT_S = 10


class Remote:
    """An ssh destination with its options (HOST=, SSH_PORT=, SSH_KEY=, SSH_KNOWN_HOSTS=, SSH_ACCEPT_NEW=)."""

    def __init__(self, host, *, port=None, key="", known_hosts="", accept_new=False, ssh="ssh"):
        self.host, self.port, self.key, self.known_hosts = host, port, key, known_hosts
        self.accept_new, self.ssh = accept_new, ssh

    def options(self):
        """-o options shared by ssh, scp and rsync's ssh."""
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
        if self.key:
            opts += ["-i", self.key, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.accept_new:
            opts += ["-o", "StrictHostKeyChecking=accept-new"]
        return opts

    def ssh_cmd(self, remote_command):
        return [self.ssh, *(["-p", str(self.port)] if self.port else []), *self.options(), self.host,
                remote_command]

    def describe(self):
        return f"{self.host}" + (f" port {self.port}" if self.port else "")

    def run(self, remote_command, *, what, timeout_s=120, check=True):
        try:
            proc = external.run(self.ssh_cmd(remote_command), capture_output=True, text=True, timeout=timeout_s,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise PipelineError(f"`{self.ssh}` is not installed; install the OpenSSH client (apt-get install "
                                "openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise PipelineError(f"{what} on {self.describe()} did not finish in {timeout_s} s") from None
        if proc.returncode == 255:
            raise ssh_error(self, proc.stderr)
        if check and proc.returncode != 0:
            raise PipelineError(f"{what} on {self.describe()} failed (exit {proc.returncode}): "
                                f"{_last_lines(proc.stderr or proc.stdout)}")
        return proc


def _last_lines(text, n=3):
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:]) or "no output"


def ssh_error(remote, stderr):
    """The PipelineError for ssh's own failures (exit 255), from its message, with what to do."""
    text = stderr or ""
    where = remote.describe()
    port_opt = f"-p {remote.port} " if remote.port else ""
    known = f" (SSH_KNOWN_HOSTS={remote.known_hosts})" if remote.known_hosts else ""
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key for" in text and "has changed" in text:
        return PipelineError(f"the host key of {where} has CHANGED since it was recorded{known}: if the board was "
                             f"reinstalled, remove the old key with `ssh-keygen -R {_hostname(remote.host)}` and "
                             "connect once to check the new one; otherwise someone may be intercepting the "
                             "connection: do not upload")
    if "Host key verification failed" in text or "No ED25519 host key is known" in text \
            or "host key is known" in text:
        return PipelineError(f"the host key of {where} is not known{known}: connect once with `ssh {port_opt}"
                             f"{remote.host}` and accept it after checking its fingerprint, or pass "
                             "SSH_ACCEPT_NEW=1 to trust it on first use")
    if "Permission denied" in text or "Too many authentication failures" in text:
        return PipelineError(f"{where} refused the ssh login ({_last_lines(text, 1)}): give the key with "
                             f"SSH_KEY=~/.ssh/id_ed25519 or install yours on the board with `ssh-copy-id {port_opt}"
                             f"{remote.host}` (batch mode: no password prompts)")
    if "Could not resolve hostname" in text:
        return PipelineError(f"cannot resolve the host name of HOST={remote.host} ({_last_lines(text, 1)}): check "
                             "the name (e.g. raspberrypi.local needs mDNS) or give its IP address")
    for needle, hint in (("Connection refused", "is sshd running on the board, and is SSH_PORT= right?"),
                         ("timed out", "is the board on and on this network?"),
                         ("No route to host", "is the board on and on this network?"),
                         ("Network is unreachable", "is this machine on the board's network?"),
                         ("Connection closed", "the board's sshd closed the connection")):
        if needle in text:
            return PipelineError(f"cannot connect to {where} over ssh ({_last_lines(text, 1)}): {hint}")
    return PipelineError(f"ssh to {where} failed: {_last_lines(text)}")


def _hostname(host):
    name = host.rsplit("@", 1)[-1]
    return name


def default_remote_dir(board_name):
    return f"tinyml/{board_name}"


def _q(path):
    """A remote path for the shell: relative paths are in the login's home; ~/ is expanded by the shell."""
    if path == "~":
        return "~"
    if path.startswith("~/"):
        return "~/" + escape.shell_quote(path[2:])
    return escape.shell_quote(path)


def probe(remote, remote_dir):
    """(the board's recorded bundle hash or "", whether rsync is installed there)."""
    script = (f"cat {_q(remote_dir)}/{HASH_FILE} 2>/dev/null; echo; "
              "if command -v rsync >/dev/null 2>&1; then echo rsync=yes; else echo rsync=no; fi")
    lines = remote.run(script, what="reading the bundle hash", check=False).stdout.splitlines()
    recorded = lines[0].strip() if lines and not lines[0].startswith("rsync=") else ""
    return recorded, "rsync=yes" in lines


def upload(bundle_dir, remote, remote_dir, *, force=False, upload_with="auto"):
    """Copies the bundle folder to remote_dir on the board unless it already has this content.
    Returns {"uploaded": bool, "sha256", "tool", "remote_dir"}."""
    digest = bundlemod.content_hash(bundle_dir)
    recorded, remote_rsync = probe(remote, remote_dir)
    if recorded == digest and not force:
        return {"uploaded": False, "sha256": digest, "tool": None, "remote_dir": remote_dir}
    local_rsync = shutil.which("rsync") is not None
    if upload_with == "rsync" and not (local_rsync and remote_rsync):
        where = "here" if not local_rsync else f"on {remote.describe()}"
        raise PipelineError(f"UPLOAD_WITH=rsync, but rsync is not installed {where}: install it (apt-get install "
                            "rsync) or use UPLOAD_WITH=scp")
    tool = "rsync" if upload_with == "rsync" or (upload_with == "auto" and local_rsync and remote_rsync) else "scp"
    # The hash goes first: a copy that stops half-way leaves no record, and the next upload redoes it.
    remote.run(f"mkdir -p {_q(remote_dir)} && rm -f {_q(remote_dir)}/{HASH_FILE}", what="preparing the folder")
    if tool == "rsync":
        _rsync(bundle_dir, remote, remote_dir)
    else:
        _scp(bundle_dir, remote, remote_dir)
    remote.run(f"printf '%s\\n' {digest} > {_q(remote_dir)}/{HASH_FILE}", what="recording the bundle hash")
    return {"uploaded": True, "sha256": digest, "tool": tool, "remote_dir": remote_dir}


def _copy_error(remote, tool, proc):
    if proc.returncode == 255 or "Host key verification failed" in proc.stderr or "Permission denied (" in proc.stderr:
        return ssh_error(remote, proc.stderr)
    return PipelineError(f"{tool} to {remote.describe()} failed (exit {proc.returncode}): {_last_lines(proc.stderr)}")


def _rsync(bundle_dir, remote, remote_dir):
    # rsync splits -e itself, with sh-style quotes (a key path with spaces or quotes stays one word).
    ssh = escape.shell_join([remote.ssh, *(["-p", str(remote.port)] if remote.port else []), *remote.options()])
    # --delete: files of an earlier bundle (other samples) go; the hash file is the board's own record.
    cmd = ["rsync", "-a", "--delete", f"--exclude=/{HASH_FILE}", "-e", ssh,
           os.path.join(os.path.abspath(bundle_dir), ""), f"{remote.host}:{remote_dir}/"]
    proc = external.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise _copy_error(remote, "rsync", proc)


def _scp(bundle_dir, remote, remote_dir):
    """scp cannot delete stale files: the bundle goes to a fresh folder beside the old one, which it then
    replaces."""
    fresh = remote_dir + ".upload"
    remote.run(f"rm -rf {_q(fresh)} && mkdir -p {_q(fresh)}", what="preparing the folder")
    entries = [os.path.join(os.path.abspath(bundle_dir), n) for n in sorted(os.listdir(bundle_dir))]
    cmd = ["scp", "-r", "-p", *(["-P", str(remote.port)] if remote.port else []), *remote.options(), *entries,
           f"{remote.host}:{fresh}/"]
    proc = external.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise _copy_error(remote, "scp", proc)
    remote.run(f"rm -rf {_q(remote_dir)} && mv {_q(fresh)} {_q(remote_dir)}", what="replacing the bundle")


def run_remote(remote, remote_dir, python, args, *, timeout_s=60):
    """Runs run.py on the board in remote_dir; returns the CompletedProcess (stdout, stderr)."""
    cmd = f"cd {_q(remote_dir)} && {_remote_python(python)} run.py " + escape.shell_join(args)
    proc = remote.run(cmd, what="running run.py", timeout_s=timeout_s, check=False)
    if proc.returncode == 127 or "No such file or directory" in proc.stderr and "cd:" in proc.stderr:
        raise PipelineError(f"run.py could not start on {remote.describe()} ({_last_lines(proc.stderr, 1)}): upload "
                            f"the bundle first (`scons upload`) and check REMOTE_PYTHON={python}")
    if proc.returncode != 0:
        hint = ""
        if "no TFLite runtime" in proc.stderr or "No module named" in proc.stderr:
            hint = (f"; install the runtime on the board (python3 -m venv ~/litert && ~/litert/bin/pip install -r "
                    f"{remote_dir}/requirements.txt) and pass REMOTE_PYTHON=~/litert/bin/python")
        raise PipelineError(f"run.py failed on {remote.describe()} (exit {proc.returncode}): "
                            f"{_last_lines(proc.stderr, 2)}{hint}")
    return proc


def _remote_python(python):
    return _q(python) if python.startswith("~/") else escape.shell_quote(python)


def monitor(remote, remote_dir, python, check_json, *, timeout_s=60):
    """Runs the uploaded bundle on its samples on the board and compares with the scores `scons check` took
    from tf.lite (check_json). Returns {"runtime", "exact", "samples": rows}."""
    import json

    from .check import compare

    with open(check_json) as f:
        checked = json.load(f)
    names = [f"{bundlemod.SAMPLES_DIR}/{r['name']}" for r in checked["samples"]]
    proc = run_remote(remote, remote_dir, python, ["--json", *names], timeout_s=timeout_s)
    try:
        ran = json.loads(proc.stdout)
    except ValueError:
        raise PipelineError(f"run.py on {remote.describe()} printed no JSON: {_last_lines(proc.stdout)}") from None
    reference = [{"name": r["name"], "scores": r["expected"], "input_sha256": r["input_sha256"]}
                 for r in checked["samples"]]
    rows = compare(reference, ran["results"])
    return {"runtime": ran["runtime"], "python": ran["python"], "exact": all(r["exact"] for r in rows),
            "samples": rows}


def stream_remote(remote, remote_dir, python, args, *, timeout_s=60, out=None):
    """Runs run.py on the board with the user's arguments (RUN_ARGS=, e.g. a camera), printing its lines as they
    come; stopped after timeout_s (MONITOR_TIMEOUT=). PipelineError when ssh or run.py fails."""
    import sys
    import threading

    out = out or sys.stdout
    cmd = f"cd {_q(remote_dir)} && {_remote_python(python)} run.py " + escape.shell_join(args)
    proc = external.popen(remote.ssh_cmd(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            out.write(line)
            out.flush()
        stderr = proc.stderr.read()
        code = proc.wait()
    finally:
        timer.cancel()
    if code == -9:
        raise PipelineError(f"run.py on {remote.describe()} was still running after MONITOR_TIMEOUT={timeout_s} s "
                            "and was stopped; give a larger MONITOR_TIMEOUT= for long runs")
    if code == 255:
        raise ssh_error(remote, stderr)
    if code != 0:
        raise PipelineError(f"run.py failed on {remote.describe()} (exit {code}): {_last_lines(stderr, 2)}")
