"""What the runtime-bootstrap tests share: ports, request ids, one contract call, and the
measurement helpers (raw-socket latency, time until a process accepts connections).

Both bootstraps (python, nodejs) serve the same instance contract, so their tests drive them
the same way.
"""

from __future__ import annotations

import socket
import subprocess
import time

TIMEOUT = 60  # generous: only guards against hangs, never decides pass/fail

_rid_counter = [0]


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def new_rid():
    _rid_counter[0] += 1
    return "req-%06d-0000-4000-8000-000000000000" % _rid_counter[0]


def call(conn, path="/invoke", body=b"", handler=None, method="POST", rid=None,
         headers=None, **kw):
    """One call of the contract over an http.client connection: (status, headers, body)."""
    h = {
        "x-fc-request-id": rid or new_rid(),
        "x-fc-function-memory": "512",
        "x-fc-function-timeout": "60",
        "content-type": "application/octet-stream",
    }
    if handler is not None:
        h["x-fc-function-handler"] = handler
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h, **kw)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def http_invoke(conn, target, method="GET", body=b"", handler=None, rid=None, headers=(),
                base_path=None, client_ip="10.1.2.3", fc_headers=None):
    """One HTTP-trigger request as fcd sends it (CONTRACT-12 section 3): the client's method,
    request-target, headers (a list of (name, value), repeats allowed) and body, plus the
    common x-fc-* headers, `x-fc-control-path: /http-invoke`, `x-fc-base-path` when given and
    `x-forwarded-for` ending with the client's address.

    Returns (status, reason, header list [(lower-case name, value)], body)."""
    pairs = [("x-fc-request-id", rid or new_rid()),
             ("x-fc-function-memory", "512"),
             ("x-fc-function-timeout", "60"),
             ("x-fc-control-path", "/http-invoke")]
    if handler is not None:
        pairs.append(("x-fc-function-handler", handler))
    if base_path is not None:
        pairs.append(("x-fc-base-path", base_path))
    pairs.extend((fc_headers or {}).items())
    client = list(headers)
    prior = [v for k, v in client if k.lower() == "x-forwarded-for"]
    client = [(k, v) for k, v in client if k.lower() != "x-forwarded-for"]
    client.append(("x-forwarded-for", ", ".join(prior + [client_ip])))
    conn.putrequest(method, target, skip_host=any(k.lower() == "host" for k, _ in client),
                    skip_accept_encoding=True)
    for k, v in client + pairs:
        conn.putheader(k, v)
    if body or method not in ("GET", "HEAD"):
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, resp.reason, [(k.lower(), v) for k, v in resp.getheaders()], data


def header_values(header_list, name):
    """Every value of one header in a response's header list, in order."""
    return [v for k, v in header_list if k == name.lower()]


def raw_latency(port, n, handler):
    """Mean round trip of n invokes of a handler answering an empty body, with a bare socket
    client (no http.client parsing overhead), i.e. closer to what the bootstrap costs."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rfile = sock.makefile("rb")
    req = ("POST /invoke HTTP/1.1\r\nHost: fc\r\nContent-Length: 2\r\n"
           "x-fc-request-id: raw-bench\r\nx-fc-function-handler: %s\r\n"
           "x-fc-function-memory: 512\r\nx-fc-function-timeout: 60\r\n\r\n{}" % handler).encode()

    def one():
        sock.sendall(req)
        assert rfile.readline().startswith(b"HTTP/1.1 200 ")
        length = None
        while True:
            line = rfile.readline()
            if line == b"\r\n":
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        assert length == 0
    for _ in range(50):
        one()
    t0 = time.perf_counter()
    for _ in range(n):
        one()
    mean = (time.perf_counter() - t0) / n
    rfile.close()
    sock.close()
    return mean


def time_to_accept(argv, port):
    """Seconds from starting `argv` until it accepts a connection on `port`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                return time.perf_counter() - t0
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.001)
    finally:
        proc.kill()
        proc.wait(TIMEOUT)
