"""Cluster mode: three fcd nodes on one PostgreSQL and one NATS JetStream, behind nginx.

Each test starts its own cluster (``clusterkit.FcdCluster``: a fresh database and stream), so
they also run — unchanged — when the session itself is a cluster (``FCD_TEST_CLUSTER``).

* 5,000 async calls spread over the nodes while one node is SIGKILLed and later restarted: none
  lost, each terminal exactly once in its record.
* A provision config of 4 on three nodes: 4 instances in all, spread over the nodes.
* A timer fires once per tick across the cluster (one scheduler at a time).
* A rolling restart of every node under steady sync load: with drain, no request fails.
* Writes on one node are seen by the others (caches invalidated across nodes), and a sync call
  goes where its function is warm.
* A function's logs, kept by each node for what ran on it, are read through any node: every
  live node's records, each saying its node; a node that does not answer is named.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

import pytest

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models

from clusterkit import FcdCluster
from fcdkit import (
    ApiError,
    create_function,
    create_service,
    delete_service_tree,
    server_status,
    unique,
    wait_until,
)

pytestmark = pytest.mark.invoke

TERMINAL = {"Succeeded", "Failed", "Stopped", "Expired", "Invalid"}


@pytest.fixture
def cluster_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., FcdCluster]]:
    started: list[FcdCluster] = []

    def start(n: int = 3, extra_args: tuple[str, ...] = (), env: dict | None = None) -> FcdCluster:
        c = FcdCluster(tmp_path / f"cluster{len(started)}", owner=request.node.nodeid, n=n, extra_args=extra_args)
        for node in c.nodes:
            node.extra_env = dict(env or {})
        started.append(c)
        return c.start()

    yield start
    for c in started:
        c.stop()


def py_function(client, service: str, source: str, **kwargs) -> str:
    return create_function(client, service, None, files={"index.py": source}, **kwargs).function_name


def invoke_sync(client, service: str, function: str, body: bytes = b"", qualifier=None):
    return client.invoke_function_with_options(
        service, function,
        m.InvokeFunctionRequest(body=body, qualifier=qualifier),
        m.InvokeFunctionHeaders(),
        util_models.RuntimeOptions(),
    )


def invoke_async(client, service: str, function: str, invocation_id: str, body: bytes = b""):
    return client.invoke_function_with_options(
        service, function,
        m.InvokeFunctionRequest(body=body),
        m.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_stateful_async_invocation_id=invocation_id),
        util_models.RuntimeOptions(),
    )


def list_all(client, service: str, function: str) -> list:
    out, token = [], None
    while True:
        body = client.list_stateful_async_invocations(
            service, function, m.ListStatefulAsyncInvocationsRequest(limit=100, next_token=token)
        ).body
        out.extend(body.invocations or [])
        token = body.next_token
        if not token:
            return out


def list_instances(client, service: str, function: str, qualifier=None) -> list:
    body = client.list_instances(service, function, m.ListInstancesRequest(qualifier=qualifier)).body
    return body.instances or []


# --------------------------------------------------------------------------------------------


def test_nodes_see_each_other_and_each_others_writes(cluster_factory):
    c = cluster_factory()
    clients = [c.node_client(i) for i in range(3)]
    def live() -> list[str]:
        return sorted(n["id"] for n in server_status(clients[0])["cluster"]["nodes"] if n["live"])

    # Each node reads the others with its heartbeat (every second).
    assert wait_until(lambda: live() == ["node0", "node1", "node2"], 5.0), live()
    # A service made on node 0 is listed on node 2; its function is invoked on node 1; an
    # update through node 2 is what node 1 runs next (its cache dropped within a second).
    svc = create_service(clients[0]).service_name
    fn = py_function(clients[0], svc, "def handler(event, context):\n    return 'v1'\n")
    assert svc in [s.service_name for s in clients[2].list_services(m.ListServicesRequest(limit=100)).body.services]
    assert invoke_sync(clients[1], svc, fn).body == b"v1"
    import base64, io, zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return 'v2'\n")
    clients[2].update_function(svc, fn, m.UpdateFunctionRequest(
        code=m.Code(zip_file=base64.b64encode(buf.getvalue()).decode())))
    assert wait_until(lambda: invoke_sync(clients[1], svc, fn).body == b"v2", 5.0), \
        "node1 kept running the old code after an update through node2"
    delete_service_tree(clients[0], svc)


def test_a_sync_call_goes_where_its_function_is_warm(cluster_factory):
    c = cluster_factory()
    clients = [c.node_client(i) for i in range(3)]
    svc = create_service(clients[0]).service_name
    fn = py_function(clients[0], svc, "def handler(event, context):\n    return context.request_id\n")
    first = invoke_sync(clients[0], svc, fn)
    instance = first.headers.get("x-fc-instance-id")
    # Once node 0 advertises its warm instance (heartbeats: ≤ 1 s), calls entering at the other
    # nodes run on it instead of cold-starting their own.
    time.sleep(2.5)
    for i in (1, 2, 1, 2):
        r = invoke_sync(clients[i], svc, fn)
        assert r.headers.get("x-fc-instance-id") == instance, (i, r.headers)
    assert len(list_instances(clients[2], svc, fn)) == 1
    delete_service_tree(clients[0], svc)


def test_async_calls_survive_a_node_killed_mid_load(cluster_factory):
    c = cluster_factory()
    client = c.client()
    svc = create_service(client).service_name
    fn = py_function(client, svc, "import time\n\ndef handler(event, context):\n    time.sleep(0.02)\n    return event\n")
    client.put_function_async_invoke_config(svc, fn, m.PutFunctionAsyncInvokeConfigRequest(stateful_invocation=True))
    total, threads = 5000, 8
    ids = [f"c{n:05d}" for n in range(total)]
    accepted: set[str] = set()
    lock = threading.Lock()
    errors: list[str] = []

    def submit(part: list[str]) -> None:
        cl = c.client()
        for inv in part:
            for attempt in range(20):
                try:
                    r = invoke_async(cl, svc, fn, inv, inv.encode())
                    assert r.status_code == 202
                    break
                except ApiError as e:
                    # Resubmitting with the same id is safe: a call the dead node had accepted
                    # answers "already exists".
                    if getattr(e, "code", "") == "StatefulAsyncInvocationAlreadyExists":
                        break
                    if attempt == 19:
                        errors.append(f"{inv}: {e}")
                        return
                    time.sleep(0.2)
                except Exception as e:  # connection reset by the killed node
                    if attempt == 19:
                        errors.append(f"{inv}: {e!r}")
                        return
                    time.sleep(0.2)
            with lock:
                accepted.add(inv)

    workers = [threading.Thread(target=submit, args=(ids[i::threads],)) for i in range(threads)]
    for w in workers:
        w.start()
    assert wait_until(lambda: len(accepted) >= total // 3, 120, 0.05)
    c.nodes[1].kill()
    for w in workers:
        w.join()
    assert not errors, errors[:10]
    assert len(accepted) == total
    time.sleep(5)
    c.nodes[1].start()

    def all_terminal() -> bool:
        return sum(1 for r in list_all(client, svc, fn) if r.status in TERMINAL) == total

    assert wait_until(all_terminal, 240, 1.0), "not every accepted call finished"
    records = list_all(client, svc, fn)
    assert len(records) == total
    assert sorted(r.invocation_id for r in records) == ids
    not_ok = [(r.invocation_id, r.status) for r in records if r.status != "Succeeded"]
    assert not not_ok, not_ok[:10]
    for r in records:
        statuses = [e.status for e in r.events or []]
        ends = [s for s in statuses if s in TERMINAL]
        assert ends == ["Succeeded"], (r.invocation_id, statuses)
    delete_service_tree(client, svc)


def test_provisioned_capacity_is_spread_over_nodes_not_multiplied(cluster_factory):
    c = cluster_factory()
    client = c.client()
    svc = create_service(client).service_name
    fn = py_function(client, svc, "def handler(event, context):\n    return 'ok'\n")
    version = client.publish_service_version(svc, m.PublishServiceVersionRequest()).body.version_id
    client.create_alias(svc, m.CreateAliasRequest(alias_name="prod", version_id=version))
    client.put_provision_config(svc, fn, m.PutProvisionConfigRequest(qualifier="prod", target=4))

    def four() -> bool:
        return len(list_instances(client, svc, fn)) == 4

    assert wait_until(four, 60, 0.5), list_instances(client, svc, fn)
    # And it stays 4 — no node adds its own 4 later.
    time.sleep(4)
    assert len(list_instances(client, svc, fn)) == 4
    per_node = {}
    for i in range(3):
        per_node[i] = len(list_instances(c.node_client(i), svc, fn, qualifier=None))
    assert set(per_node.values()) == {4}, per_node  # every node lists the cluster's instances
    got = client.get_provision_config(svc, fn, m.GetProvisionConfigRequest(qualifier="prod")).body
    assert got.target == 4 and got.current == 4, got.to_map()
    st = server_status(c.node_client(0))
    counts = [n.get("instances", 0) for n in st["cluster"]["nodes"] if n["live"]]
    assert sorted(counts) == [1, 1, 2], st["cluster"]["nodes"]
    client.put_provision_config(svc, fn, m.PutProvisionConfigRequest(qualifier="prod", target=0))
    assert wait_until(lambda: len(list_instances(client, svc, fn)) == 0, 30, 0.5)
    delete_service_tree(client, svc)


def test_a_timer_fires_once_per_tick_across_the_cluster(cluster_factory):
    c = cluster_factory(env={"RUST_LOG": "info,fcd_control::timers=debug"})
    client = c.client()
    svc = create_service(client).service_name
    fn = py_function(client, svc, "def handler(event, context):\n    return event\n")
    client.put_function_async_invoke_config(svc, fn, m.PutFunctionAsyncInvokeConfigRequest(stateful_invocation=True))
    client.create_trigger(svc, fn, m.CreateTriggerRequest(
        trigger_name="tick", trigger_type="timer",
        trigger_config=json.dumps({"cronExpression": "*/2 * * * * *", "enable": True, "payload": "p"}),
    ))
    time.sleep(13)
    client.update_trigger(svc, fn, "tick", m.UpdateTriggerRequest(
        trigger_config=json.dumps({"cronExpression": "*/2 * * * * *", "enable": False, "payload": "p"})))
    time.sleep(1.5)
    fired = Counter()
    doubles = 0
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    for node in c.nodes:
        text = ansi.sub("", node.logs())
        for line in text.splitlines():
            if "timer fired" in line and "tick" in line:
                mt = re.search(r"tick=(\d+)", line)
                if mt:
                    fired[mt.group(1)] += 1
            if "already fired" in line:
                doubles += 1
    assert len(fired) >= 5, fired
    assert all(n == 1 for n in fired.values()), fired
    assert doubles == 0
    assert wait_until(lambda: len([r for r in list_all(client, svc, fn) if r.status == "Succeeded"]) == len(fired), 20, 0.5)
    client.delete_trigger(svc, fn, "tick")
    delete_service_tree(client, svc)


def test_rolling_restart_under_sync_load_fails_no_request(cluster_factory):
    c = cluster_factory()
    client = c.client()
    svc = create_service(client).service_name
    fn = py_function(client, svc, "import time\n\ndef handler(event, context):\n    time.sleep(0.01)\n    return 'ok'\n")
    assert invoke_sync(client, svc, fn).body == b"ok"
    stop = threading.Event()
    ok = Counter()
    failures: list[str] = []

    def load() -> None:
        cl = c.client()
        while not stop.is_set():
            try:
                r = invoke_sync(cl, svc, fn)
                if r.body == b"ok":
                    ok["n"] += 1
                else:
                    failures.append(repr(r.body))
            except Exception as e:
                failures.append(repr(e))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(2)
        for node in c.nodes:
            before = ok["n"]
            assert node.stop() == 0, node.logs()
            node.start()
            time.sleep(3)
            assert ok["n"] > before, "no call succeeded while a node restarted"
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert not failures, failures[:10]
    assert ok["n"] > 100
    delete_service_tree(client, svc)


class Relay:
    """A TCP relay to PostgreSQL that a test can cut (every connection reset, new ones
    refused: what a node sees when the database host goes away) and restore on the same port."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.listener = None
        self.lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(128)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        # shutdown() first: a bare close() leaves a socket blocked in accept() listening.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass


def test_an_unreachable_store_is_a_503_and_the_node_recovers(cluster_factory, tmp_path):
    """PostgreSQL unreachable for a node (its connections reset, new ones refused): requests
    get FC's 503 ServiceUnavailable, nothing is half-written, and the node recovers by itself
    once the database is reachable again."""
    from clusterkit import engines, new_database
    from fcdkit import _new_server

    pg, nats = engines()
    db_url = new_database(pg)
    port = int(db_url.rsplit(":", 1)[1].split("/", 1)[0])
    relay = Relay(port)
    via_relay = db_url.replace(f":{port}/", f":{relay.port}/")
    node = _new_server(tmp_path / "n", owner="unreachable", extra_args=("--store", via_relay, "--node-id", "solo"))
    node.start()
    try:
        client = node.client()
        svc = create_service(client).service_name
        relay.cut()
        name = unique("s")
        with pytest.raises(ApiError) as err:
            client.create_service(m.CreateServiceRequest(service_name=name))
        assert err.value.code == "ServiceUnavailable", err.value
        relay.restore()
        assert wait_until(lambda: _lists(client, svc), 20, 0.5), "the node did not recover"
        # The refused create left nothing behind.
        assert name not in [s.service_name for s in client.list_services(m.ListServicesRequest(limit=100)).body.services]
        delete_service_tree(client, svc)
    finally:
        node.stop()
        relay.cut()


def _lists(client, svc: str) -> bool:
    try:
        return svc in [s.service_name for s in client.list_services(m.ListServicesRequest(limit=100)).body.services]
    except ApiError:
        return False


# --------------------------------------------------------------------------------------------

# A node runs a call that says it was forwarded itself (the signature is still checked): the
# test uses it to put one call on each of two chosen nodes.
PINNED = {"x-fcd-forwarded-from": "pytest"}


def function_logs(client, svc: str, fn: str, headers: dict | None = None, **query) -> dict:
    """fcd's logs API (``GET …/logs``), signed by the SDK's generic ``call_api``."""
    params = open_api_models.Params(
        action="GetFunctionLogs", version="2021-04-06", protocol="HTTP",
        pathname=f"/2021-04-06/services/{svc}/functions/{fn}/logs", method="GET",
        auth_type="AK", style="ROA", req_body_type="json", body_type="json",
    )
    req = open_api_models.OpenApiRequest(query={k: str(v) for k, v in query.items()}, headers=dict(headers or {}))
    return client.call_api(params, req, util_models.RuntimeOptions())["body"]


def test_logs_are_read_across_the_cluster(cluster_factory):
    c = cluster_factory()
    clients = [c.node_client(i) for i in range(3)]
    live = lambda: sorted(n["id"] for n in server_status(clients[0])["cluster"]["nodes"] if n["live"])
    assert wait_until(lambda: live() == ["node0", "node1", "node2"], 5.0), live()
    svc = create_service(clients[0]).service_name
    fn = py_function(clients[0], svc, "def handler(event, context):\n    print('MARK-' + event.decode())\n    return 'ok'\n")
    for i in (0, 1):
        r = clients[i].invoke_function_with_options(
            svc, fn, m.InvokeFunctionRequest(body=f"n{i}".encode()),
            m.InvokeFunctionHeaders(common_headers=PINNED), util_models.RuntimeOptions(),
        )
        assert r.body == b"ok"

    def marks(body: dict) -> set:
        return {(mk, r.get("node")) for r in body["records"] for mk in re.findall(r"MARK-n\d", r["message"])}

    want = {("MARK-n0", "node0"), ("MARK-n1", "node1")}
    # Read through node 2, where neither ran (the log writer flushes within 25 ms).
    assert wait_until(lambda: marks(function_logs(clients[2], svc, fn)) == want, 5.0), \
        function_logs(clients[2], svc, fn)
    body = function_logs(clients[2], svc, fn)
    assert body["unreachableNodes"] == [] and body["truncated"] is False, body
    assert {r["node"] for r in body["records"]} == {"node0", "node1"}, body
    stamps = [r["timestamp"] for r in body["records"]]
    assert stamps == sorted(stamps), body
    # Without `since` a limit keeps the newest records, and says so.
    newest = function_logs(clients[2], svc, fn, limit=1)
    assert len(newest["records"]) == 1 and newest["truncated"] is True, newest
    assert newest["records"][0]["timestamp"] == stamps[-1], newest
    # With `since`: the first ones.
    first = function_logs(clients[0], svc, fn, limit=1, since=0)
    assert len(first["records"]) == 1 and first["truncated"] is True, first
    assert first["records"][0]["timestamp"] == stamps[0], first
    # A forwarded query is answered from its node's own log.
    assert marks(function_logs(clients[1], svc, fn, headers=PINNED)) == {("MARK-n1", "node1")}
    # A node killed a moment ago is still listed live (its heartbeat is < 5 s old) but does
    # not answer: the others' records still come, and it is named.
    c.nodes[1].kill()
    body = function_logs(clients[0], svc, fn)
    assert body["unreachableNodes"] == ["node1"], body
    assert marks(body) == {("MARK-n0", "node0")}, body
    delete_service_tree(clients[0], svc)
