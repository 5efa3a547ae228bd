"""Build variables of the Linux-board route: where the board is (ssh) and where the runtime venv lives.

codegen.config merges VARIABLES into its table (so `scons -h` lists them) and calls `parse` on the raw values.
"""
import os
import re
import shlex

from ..errors import ConfigError

UPLOAD_TOOLS = ("auto", "rsync", "scp")

# name: (default, help)
VARIABLES = {
    "HOST": ("", "Linux boards: ssh destination for upload/monitor, e.g. pi@raspberrypi.local (user@host, "
                 "user@host:port, or a Host alias from ~/.ssh/config)"),
    "SSH_PORT": ("", "Linux boards: ssh port; empty: ssh's own (22 or ~/.ssh/config)"),
    "SSH_KEY": ("", "Linux boards: ssh identity file (private key); empty: ssh's defaults and agent"),
    "SSH_KNOWN_HOSTS": ("", "Linux boards: known_hosts file to check the board's host key against; empty: "
                            "~/.ssh/known_hosts"),
    "SSH_ACCEPT_NEW": ("0", "Linux boards: 1 trusts a host key seen for the first time and records it (ssh "
                            "StrictHostKeyChecking=accept-new); a changed key is refused all the same"),
    "REMOTE_DIR": ("", "Linux boards: folder on the board for the bundle; empty: tinyml/<BOARD> in the login's "
                       "home"),
    "REMOTE_PYTHON": ("python3", "Linux boards: the Python on the board that has the runtime installed, e.g. "
                                 "~/litert/bin/python"),
    "UPLOAD_WITH": ("auto", "Linux boards: rsync, scp, or auto (rsync when both ends have it, else scp)"),
    "RUN_ARGS": ("", "Linux boards: `scons monitor` runs run.py with these arguments instead of checking the "
                     "bundled samples, e.g. RUN_ARGS='--camera --frames 10'"),
    "RUNTIME_VENV": ("", "Linux boards: folder for the isolated runtime venvs `scons check` runs the bundle in "
                         "(one per requirements.txt); empty: ~/.cache/tinyml-scons/runtime-venvs"),
    "BENCH_RUNS": ("50", "Linux boards: invokes per sample for the latency in the memory report"),
}

_REMOTE_DIR = re.compile(r"(~/)?[A-Za-z0-9_.+@/-]+|~")
_PORT_SUFFIX = re.compile(r"^([^:\[\]]+):(\d+)$")


def _port(value, what):
    try:
        port = int(str(value).strip())
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ConfigError(f"{what}={value!r} is not a TCP port; give a number from 1 to 65535, e.g. SSH_PORT=22")
    return port


def parse(v):
    """{setting: value} from the raw strings `v` (every VARIABLES name present)."""
    host = v["HOST"].strip()
    port = _port(v["SSH_PORT"], "SSH_PORT") if v["SSH_PORT"].strip() else None
    match = _PORT_SUFFIX.match(host)
    if match:       # user@host:2222, as people write it; ssh itself wants -p
        host, host_port = match.group(1), _port(match.group(2), "HOST")
        if port is not None and port != host_port:
            raise ConfigError(f"HOST={v['HOST']!r} names port {host_port} but SSH_PORT={port}; give the port once")
        port = host_port
    if host and (host.startswith("-") or any(c.isspace() for c in host) or host.endswith("@") or "@@" in host):
        raise ConfigError(f"HOST={host!r} is not an ssh destination; give user@host, e.g. HOST=pi@raspberrypi.local")
    key = v["SSH_KEY"].strip()
    if key and not os.path.isfile(os.path.expanduser(key)):
        raise ConfigError(f"SSH_KEY={key!r} does not exist; give the private key file ssh should log in with "
                          "(e.g. ~/.ssh/id_ed25519)")
    known_hosts = v["SSH_KNOWN_HOSTS"].strip()
    if known_hosts and not os.path.isdir(os.path.dirname(os.path.abspath(os.path.expanduser(known_hosts)))):
        raise ConfigError(f"SSH_KNOWN_HOSTS={known_hosts!r} is in a folder that does not exist")
    accept_new = v["SSH_ACCEPT_NEW"].strip()
    if accept_new not in ("0", "1"):
        raise ConfigError(f"SSH_ACCEPT_NEW={accept_new!r}: use 1 (trust a first-seen host key) or 0")
    remote_dir = v["REMOTE_DIR"].strip().rstrip("/")
    if remote_dir.startswith("-") or "\n" in remote_dir:
        raise ConfigError(f"REMOTE_DIR={remote_dir!r} is not a usable folder name")
    # scp (before OpenSSH 9) and rsync (before 3.2.4) hand `host:REMOTE_DIR` to the board's shell as it is:
    # only characters that shell reads as themselves.
    if remote_dir and not _REMOTE_DIR.fullmatch(remote_dir):
        raise ConfigError(f"REMOTE_DIR={remote_dir!r} holds characters the board's shell would interpret (spaces, "
                          "quotes, $, ;, ...); use letters, digits and _ . + - @ / (and ~/ at the start)")
    upload_with = v["UPLOAD_WITH"].strip()
    if upload_with not in UPLOAD_TOOLS:
        raise ConfigError(f"UPLOAD_WITH={upload_with!r} is not supported; use one of: {', '.join(UPLOAD_TOOLS)}")
    try:
        run_args = shlex.split(v["RUN_ARGS"])
    except ValueError as e:
        raise ConfigError(f"RUN_ARGS={v['RUN_ARGS']!r}: {e}") from None
    try:
        bench_runs = int(v["BENCH_RUNS"].strip())
    except ValueError:
        bench_runs = 0
    if bench_runs < 1:
        raise ConfigError(f"BENCH_RUNS={v['BENCH_RUNS']!r} must be a whole number of at least 1")
    return {"host": host, "ssh_port": port, "ssh_key": os.path.expanduser(key) if key else "",
            "ssh_known_hosts": os.path.abspath(os.path.expanduser(known_hosts)) if known_hosts else "",
            "ssh_accept_new": accept_new == "1", "remote_dir": remote_dir,
            "remote_python": v["REMOTE_PYTHON"].strip() or "python3", "upload_with": upload_with,
            "run_args": run_args, "runtime_venv": os.path.abspath(os.path.expanduser(v["RUNTIME_VENV"].strip()))
            if v["RUNTIME_VENV"].strip() else "", "bench_runs": bench_runs}
