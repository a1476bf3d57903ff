"""The instance jail, seen from inside hostile functions, through the official 2021-04-06 SDK.

A jailed function (``fcd serve`` as root, the default ``--isolation jail``) must not reach
another function's code, fcd's data dir or credentials — wherever the data dir is, even inside a
tree the jail shows (``/usr/local``) — nor list ``/opt``, ``/home``, ``/root``; it runs under a
uid of its own, under a system-call filter that answers ``EPERM`` to what functions never need,
and cannot change its code. Node.js functions and custom runtimes whose server is a binary in
the code package still run under that view.

Where the server does not jail (not root: the harness then asks for ``--isolation none``),
``/status`` says so and every test here is skipped with that reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Optional

import pytest

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client
from alibabacloud_tea_util import models as util_models

from fcdkit import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    ACCOUNT_ID,
    FcdServer,
    create_function,
    make_zip_bytes,
    server_status,
    unique,
)

pytestmark = pytest.mark.invoke

# A function that tries things on request and reports what happened, never raising.
PROBE = r'''
import ctypes, errno, json, os, platform, pwd, subprocess, sys, threading

# System-call numbers of the calls the jail must refuse (x86-64 and arm64).
NR = {
    "x86_64": {"mount": 165, "ptrace": 101, "bpf": 321, "unshare": 272, "keyctl": 250,
               "personality": 135, "getpid": 39},
    "aarch64": {"mount": 40, "ptrace": 117, "bpf": 280, "unshare": 97, "keyctl": 219,
                "personality": 92, "getpid": 172},
}
L = ctypes.c_long
ARGS = {
    "mount": (ctypes.c_char_p(b"none"), ctypes.c_char_p(b"/tmp"), ctypes.c_char_p(b"tmpfs"), L(0), None),
    "ptrace": (L(0), L(0), L(0), L(0)),          # PTRACE_TRACEME: works for anyone unfiltered
    "bpf": (L(5), None, L(0)),                    # BPF_PROG_LOAD
    "unshare": (L(0x10000000),),                  # CLONE_NEWUSER: works for anyone unfiltered
    "keyctl": (L(0), L(-3), L(1)),                # KEYCTL_GET_KEYRING_ID (session keyring)
    "personality": (L(0x0040000),),               # ADDR_NO_RANDOMIZE
    "getpid": (),
}


def attempt(fn, *a):
    try:
        return {"ok": True, "value": fn(*a)}
    except OSError as e:
        return {"ok": False, "error": errno.errorcode.get(e.errno, str(e.errno))}


def read(path):
    with open(path, "rb") as f:
        return f.read(200).decode("latin-1")


def append(path):
    with open(path, "ab") as f:
        f.write(b"#")
    return "written"


def syscall(name):
    libc = ctypes.CDLL(None, use_errno=True)
    nr = NR[platform.machine()][name]
    rc = libc.syscall(L(nr), *ARGS[name])
    if rc == -1:
        return {"ok": False, "error": errno.errorcode.get(ctypes.get_errno(), "?")}
    return {"ok": True, "value": rc}


def find(marker, root, skip):
    """Every visible path under ``root`` whose name or (small) content holds ``marker``."""
    hits = []
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in skip]
        for name in dirs + files:
            path = os.path.join(top, name)
            if marker in name:
                hits.append(path)
        for name in files:
            path = os.path.join(top, name)
            try:
                if os.path.isfile(path) and os.path.getsize(path) <= 1 << 20:
                    with open(path, "rb") as f:
                        if marker.encode() in f.read():
                            hits.append(path)
            except OSError:
                pass
    return hits


def status_field(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()


def handler(event, context):
    req = json.loads(event)
    op = req["op"]
    if op == "whoami":
        st = os.stat("/tmp")
        t = threading.Thread(target=lambda: None)
        t.start(); t.join()
        return json.dumps({
            "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
            "groups": os.getgroups(), "name": pwd.getpwuid(os.getuid()).pw_name,
            "tmp": {"uid": st.st_uid, "mode": st.st_mode & 0o7777},
            "seccomp": status_field("Seccomp"), "noNewPrivs": status_field("NoNewPrivs"),
            "subprocess": subprocess.run(["/bin/sh", "-c", "echo ran"], capture_output=True).stdout.decode().strip(),
        })
    if op == "read":
        return json.dumps({p: attempt(read, p) for p in req["paths"]})
    if op == "list":
        return json.dumps({p: attempt(os.listdir, p) for p in req["paths"]})
    if op == "write":
        out = {p: attempt(append, p) for p in req["paths"]}
        out["chmod"] = attempt(os.chmod, "/code/index.py", 0o777)
        out["create"] = attempt(append, "/code/new-file")
        return json.dumps(out)
    if op == "syscalls":
        return json.dumps({n: syscall(n) for n in req["names"]})
    if op == "find":
        skip = {"/proc", "/sys", "/dev", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                "/libx32", "/code", sys.base_prefix}
        root = req.get("root", "/")
        return json.dumps(find(req["marker"], root, skip if root == "/" else set()))
    return json.dumps({"unknown": op})
'''


def _status(server: FcdServer) -> dict:
    return server_status(server.client())


def _jailed_or_skip(server: FcdServer) -> dict:
    iso = _status(server).get("isolation", {})
    if not iso.get("jailed"):
        pytest.skip("instances are not jailed on this server: %s" % iso.get("missing"))
    return iso


def _call(client: Client, service: str, function: str, body) -> dict:
    return json.loads(_call_raw(client, service, function, json.dumps(body).encode()))


def _call_raw(client: Client, service: str, function: str, payload: bytes) -> bytes:
    resp = client.invoke_function_with_options(
        service,
        function,
        m.InvokeFunctionRequest(body=payload),
        m.InvokeFunctionHeaders(),
        util_models.RuntimeOptions(read_timeout=120_000),
    )
    assert "x-fc-error-type" not in resp.headers, resp.body
    return resp.body


def _probe(client: Client, service: str, **kwargs) -> str:
    name = unique("probe")
    create_function(client, service, name, files={"index.py": PROBE}, runtime="python3.10", **kwargs)
    return name


def _fcd_uid(server: FcdServer) -> int:
    with open("/proc/%d/status" % server.proc.pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def _refused(result: dict) -> bool:
    return not result["ok"]


def _deploy_secret_function(client: Client, service: str) -> tuple[str, str, bytes]:
    """A function whose code holds a unique marker; returns (name, marker, zip bytes)."""
    marker = "SECRET" + uuid.uuid4().hex
    zip_bytes = make_zip_bytes({"index.py": "MARK = %r\n\ndef handler(e, c):\n    return MARK\n" % marker})
    name = unique("secret")
    create_function(client, service, name, zip_bytes=zip_bytes, runtime="python3.10")
    return name, marker, zip_bytes


# --------------------------------------------------------------------------------------------
# Identity and system calls
# --------------------------------------------------------------------------------------------


def test_functions_run_under_uids_of_their_own(fcd, client, service):
    _jailed_or_skip(fcd)
    a, b = _probe(client, service), _probe(client, service)
    wa = _call(client, service, a, {"op": "whoami"})
    wb = _call(client, service, b, {"op": "whoami"})
    fcd_uid = _fcd_uid(fcd)
    for who in (wa, wb):
        assert who["uid"] == who["euid"] == who["gid"], who
        assert who["uid"] not in (0, 65534, fcd_uid), who
        assert who["groups"] in ([], [who["gid"]]), who
        assert who["name"] == "fc", who
        # Its /tmp is its own: owned by its uid, closed to every other.
        assert who["tmp"] == {"uid": who["uid"], "mode": 0o700}, who
        # Threads and child processes still work (clone3 answers ENOSYS, clone is checked).
        assert who["subprocess"] == "ran", who
    assert wa["uid"] != wb["uid"], (wa, wb)


def test_denied_system_calls_answer_eperm(fcd, client, service):
    _jailed_or_skip(fcd)
    probe = _probe(client, service)
    who = _call(client, service, probe, {"op": "whoami"})
    assert who["seccomp"] == "2", who  # SECCOMP_MODE_FILTER
    assert who["noNewPrivs"] == "1", who
    denied = ["mount", "ptrace", "bpf", "unshare", "keyctl", "personality"]
    got = _call(client, service, probe, {"op": "syscalls", "names": denied + ["getpid"]})
    for name in denied:
        assert got[name] == {"ok": False, "error": "EPERM"}, (name, got)
    assert got["getpid"]["ok"], got


# --------------------------------------------------------------------------------------------
# What a function can see
# --------------------------------------------------------------------------------------------


def test_function_cannot_read_another_functions_code(fcd, client, service, new_service):
    _jailed_or_skip(fcd)
    # The victim lives in another service; both have run, so both have had instances.
    victim_service = new_service()
    victim, marker, zip_bytes = _deploy_secret_function(client, victim_service)
    assert _call_raw(client, victim_service, victim, b"") == marker.encode()
    probe = _probe(client, service)
    digest = hashlib.sha256(zip_bytes).hexdigest()
    host_code = fcd.data_dir.resolve() / "code" / digest
    paths = [
        str(host_code / "index.py"),
        str(host_code) + ".zip",
        "/.fcd/code/%s/index.py" % digest,  # where prewarmed jails see the store before assignment
        "/code/../%s/index.py" % digest,
    ]
    got = _call(client, service, probe, {"op": "read", "paths": paths})
    for p in paths:
        assert _refused(got[p]), (p, got[p])
    listed = _call(client, service, probe, {"op": "list", "paths": ["/.fcd", "/.fcd/code", str(host_code.parent)]})
    for p, r in listed.items():
        assert _refused(r), (p, r)
    # Nothing visible anywhere holds the victim's code.
    assert _call(client, service, probe, {"op": "find", "marker": marker}) == []


def test_function_sees_an_allow_list_of_the_host(fcd, client, service):
    _jailed_or_skip(fcd)
    probe = _probe(client, service)
    data = str(fcd.data_dir.resolve())
    listed = _call(client, service, probe, {"op": "list", "paths": [
        "/opt", "/home", "/root", "/srv", "/var", "/run", "/sys", "/mnt", "/media", data,
    ]})
    for p, r in listed.items():
        if p == "/var" and r["ok"]:
            # Only fcd's bootstraps live there.
            assert r["value"] == ["fcd"], r
            continue
        assert _refused(r), (p, r)
    got = _call(client, service, probe, {"op": "read", "paths": [
        "/etc/shadow", "/etc/passwd", data + "/credentials.json", data + "/meta.db",
    ]})
    assert _refused(got["/etc/shadow"]), got
    passwd = got["/etc/passwd"]
    assert passwd["ok"], got
    users = sorted(line.split(":")[0] for line in passwd["value"].splitlines() if line)
    assert users == ["fc", "nobody", "root"], passwd
    for p in (data + "/credentials.json", data + "/meta.db"):
        assert _refused(got[p]), (p, got[p])


def test_function_cannot_change_its_code(fcd, client, service):
    _jailed_or_skip(fcd)
    probe = _probe(client, service)
    got = _call(client, service, probe, {"op": "write", "paths": ["/code/index.py", "/code"]})
    for key, r in got.items():
        assert _refused(r), (key, r)
    # On disk, the extracted tree has no write bit for anyone.
    code_root = fcd.data_dir.resolve() / "code"
    trees = [p for p in code_root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert trees, "no extracted code under %s" % code_root
    for tree in trees:
        for path in [tree, *tree.rglob("*")]:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            assert mode & 0o222 == 0, "%s is writable (%o)" % (path, mode & 0o7777)


# --------------------------------------------------------------------------------------------
# The data dir wherever it is
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parent", ["/opt", "/usr/local"])
def test_data_dir_is_unreachable_wherever_it_is(fcd, fcd_factory, parent):
    _jailed_or_skip(fcd)
    if not os.access(parent, os.W_OK):
        pytest.skip("cannot create a data dir under %s here" % parent)
    base = Path(parent) / ("fcd-jail-test-" + uuid.uuid4().hex[:10])
    data = base / "data"
    data.mkdir(parents=True)
    server: Optional[FcdServer] = None
    try:
        # A credentials file the server reads, world-readable on disk: only the jail keeps it
        # from functions.
        marker = "jail-test-secret-" + uuid.uuid4().hex
        creds = data / "credentials.json"
        creds.write_text(json.dumps({
            "access_key_id": ACCESS_KEY_ID, "access_key_secret": marker, "account_id": ACCOUNT_ID,
        }))
        creds.chmod(0o644)
        os.chmod(base, 0o755)
        os.chmod(data, 0o755)
        server = fcd_factory(data_dir=data)
        _jailed_or_skip(server)
        client = server.client()
        svc = unique("jail")
        client.create_service(m.CreateServiceRequest(service_name=svc))
        victim, code_marker, zip_bytes = _deploy_secret_function(client, svc)
        assert _call_raw(client, svc, victim, b"") == code_marker.encode()
        probe = _probe(client, svc)
        digest = hashlib.sha256(zip_bytes).hexdigest()
        paths = [
            str(creds),
            str(data / "meta.db"),
            str(data / "code" / digest / "index.py"),
            str(data / "code" / (digest + ".zip")),
        ]
        got = _call(client, svc, probe, {"op": "read", "paths": paths})
        for p in paths:
            assert _refused(got[p]), (p, got[p])
        listed = _call(client, svc, probe, {"op": "list", "paths": [str(data), str(data / "code")]})
        for p, r in listed.items():
            assert _refused(r), (p, r)
        if parent == "/opt":
            # Not shown at all.
            assert _refused(_call(client, svc, probe, {"op": "list", "paths": [parent]})[parent])
        else:
            # Inside a shown tree: the tree is there, the data dir in it is covered.
            around = _call(client, svc, probe, {"op": "list", "paths": [str(base)]})[str(base)]
            assert around == {"ok": True, "value": ["data"]}, around
        # Nothing reachable under the parent holds the credentials or the code.
        for secret in (marker, code_marker):
            assert _call(client, svc, probe, {"op": "find", "marker": secret, "root": parent}) == []
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Other runtimes under the same view
# --------------------------------------------------------------------------------------------

NODE_PROBE = r"""
const fs = require('fs');
const os = require('os');
exports.handler = (event, context, callback) => {
  let opt;
  try { fs.readdirSync('/opt'); opt = 'listed'; } catch (e) { opt = e.code; }
  callback(null, JSON.stringify({
    uid: process.getuid(), user: os.userInfo().username, opt,
    tz: Intl.DateTimeFormat().resolvedOptions().timeZone,
  }));
};
"""


def test_nodejs_functions_run_in_the_jail(fcd, client, service):
    _jailed_or_skip(fcd)
    name = unique("node")
    create_function(client, service, name, files={"index.js": NODE_PROBE}, runtime="nodejs20")
    got = json.loads(_call_raw(client, service, name, b""))
    assert got["uid"] not in (0, 65534, _fcd_uid(fcd)), got
    assert got["user"] == "fc", got
    assert got["opt"] == "ENOENT", got
    assert got["tz"], got


CUSTOM_SERVER = r"""
import http.server, json, os

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"uid": os.getuid(), "exe": os.path.realpath("/proc/self/exe")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

http.server.HTTPServer(("0.0.0.0", int(os.environ.get("FC_SERVER_PORT", "9000"))), H).serve_forever()
"""


def test_custom_runtime_binary_from_the_code_package_runs(fcd, client, service):
    _jailed_or_skip(fcd)
    # A real ELF executable shipped in the package: a copy of the system's Python.
    host = shutil.which("python3", path="/usr/bin:/bin")
    if host is None:
        pytest.skip("no system python3 in /usr/bin to ship as the function's binary")
    binary = Path(host).resolve().read_bytes()
    if binary[:4] != b"\x7fELF":
        pytest.skip("%s is not an ELF binary" % host)
    zip_bytes = make_zip_bytes({"bin/server": binary, "server.py": CUSTOM_SERVER}, executable=("bin/server",))
    name = unique("bin")
    create_function(
        client, service, name, zip_bytes=zip_bytes, runtime="custom", handler="index.handler",
        custom_runtime_config=m.CustomRuntimeConfig(command=["/code/bin/server"], args=["/code/server.py"]),
    )
    got = json.loads(_call_raw(client, service, name, b""))
    assert got["exe"] == "/code/bin/server", got
    assert got["uid"] not in (0, 65534, _fcd_uid(fcd)), got
