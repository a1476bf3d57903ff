"""Cluster helpers: PostgreSQL and NATS on loopback, several ``fcd serve`` nodes on them, and
nginx in front as the load balancer any deployment would have.

* :func:`engines` — ``(postgres_url, nats_url)``: ``$FCD_TEST_POSTGRES`` / ``$FCD_TEST_NATS``
  when set, else ``scripts/services start`` (which installs and starts them).
* :func:`new_database` — a fresh database on that PostgreSQL, so clusters never share state.
* :class:`FcdCluster` — ``n`` nodes (fixed ports, so a restarted node keeps its address) on one
  database and one NATS stream, each with its own data dir, behind :class:`Balancer`. ``.addr``
  is the balancer's address: SDK clients made from it round-robin over the nodes, request by
  request. It quacks like :class:`fcdkit.FcdServer` (``addr``, ``client()``,
  ``classic_client()``, ``logs()``, ``data_dir`` of node 0) so the whole SDK suite runs on it
  (``FCD_TEST_CLUSTER=3``, see conftest.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Optional

import pytest

from fcdkit import FcdServer, _new_server, make_classic_client, make_client, make_fc3_client

REPO = Path(__file__).resolve().parents[2]


def engines() -> tuple[str, str]:
    pg = os.environ.get("FCD_TEST_POSTGRES")
    nats = os.environ.get("FCD_TEST_NATS")
    if pg and nats:
        return pg, nats
    out = subprocess.run(
        [str(REPO / "scripts" / "services"), "start"],
        check=False, capture_output=True, text=True,
    )
    if out.returncode != 0:
        pytest.fail(f"scripts/services could not start PostgreSQL and NATS:\n{out.stderr}", pytrace=False)
    env = {}
    for line in out.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            env[k] = v.strip("'\"")
    os.environ.update(env)
    return env["FCD_TEST_POSTGRES"], env["FCD_TEST_NATS"]


def new_database(pg_url: str, prefix: str = "fcd") -> str:
    """Creates an empty database next to ``pg_url``'s and returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    subprocess.run(
        ["psql", pg_url, "-q", "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"'],
        check=True, capture_output=True,
    )
    base = pg_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Balancer:
    """nginx round-robin over the nodes. A node that refuses connections (stopped) is skipped
    for the request at hand — nothing was sent to it — which is what every load balancer does;
    a request already sent to a node is never sent again (nginx does not retry POSTs)."""

    def __init__(self, base: Path, ports: list[int]):
        self.dir = base / "nginx"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ports = ports
        self.proc: Optional[subprocess.Popen] = None

    def _conf(self) -> str:
        d = self.dir
        servers = "\n".join(
            f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;" for p in self.ports
        )
        return f"""
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  client_max_body_size 0;
  client_header_buffer_size 64k;
  large_client_header_buffers 8 64k;
  upstream fcd {{
{servers}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://fcd;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_pass_request_headers on;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_connect_timeout 2s;
      proxy_read_timeout 900s;
      proxy_send_timeout 900s;
      proxy_next_upstream error;
      proxy_next_upstream_tries 0;
    }}
  }}
}}
"""

    def start(self) -> "Balancer":
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(nginx):
            pytest.fail("nginx is not installed (scripts/test installs it)", pytrace=False)
        conf = self.dir / "nginx.conf"
        conf.write_text(self._conf())
        self.proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(self.dir), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=open(self.dir / "stdout.log", "wb"),
            stderr=open(self.dir / "stderr.log", "wb"),
            start_new_session=True,
        )
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FcdCluster:
    """``n`` fcd nodes on one PostgreSQL database and one NATS stream, behind nginx."""

    def __init__(self, base: Path, owner: str, n: int = 3, extra_args: tuple[str, ...] = ()):
        pg, nats = engines()
        self.store_url = new_database(pg)
        # Each cluster its own stream, so clusters of different tests never share work.
        self.queue_url = f"{nats}/fcd_{uuid.uuid4().hex[:12]}"
        self.ports = [free_port() for _ in range(n)]
        self.balancer = Balancer(base, self.ports)
        self.nodes: list[FcdServer] = []
        for i, port in enumerate(self.ports):
            args = (
                "--store", self.store_url,
                "--queue", self.queue_url,
                "--node-id", f"node{i}",
                # Clients reach the cluster through the balancer: HTTP triggers' URLs say so.
                "--public-url", f"http://127.0.0.1:{self.balancer.port}",
            ) + tuple(extra_args)
            node = _new_server(base / f"node{i}", owner=owner, extra_args=args)
            node.listen = f"127.0.0.1:{port}"
            self.nodes.append(node)

    def start(self) -> "FcdCluster":
        for node in self.nodes:
            node.start()
        self.balancer.start()
        return self

    def stop(self) -> None:
        self.balancer.stop()
        for node in self.nodes:
            node.stop()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.balancer.port}"

    @property
    def data_dir(self) -> Path:
        return self.nodes[0].data_dir

    @property
    def proc(self):
        """Node 0's process (every node runs as the same user)."""
        return self.nodes[0].proc

    def client(self, **kwargs):
        return make_client(self.addr, **kwargs)

    def fc3_client(self, **kwargs):
        """An FC 3.0 client of the balancer, like ``FcdServer.fc3_client``."""
        return make_fc3_client(self.addr, **kwargs)

    def classic_client(self, **kwargs):
        return make_classic_client(self.addr, **kwargs)

    def node_client(self, i: int, **kwargs):
        return make_client(self.nodes[i].addr, **kwargs)

    def logs(self) -> str:
        return "\n".join(f"===== node{i} =====\n{n.logs()}" for i, n in enumerate(self.nodes))
