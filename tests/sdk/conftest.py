"""Pytest fixtures for the SDK acceptance tests; the helpers themselves live in fcdkit.py.

Fixtures:

* ``fcd``            session-scoped running server (``FcdServer``: ``.addr``, ``.data_dir``, ``.logs()``)
* ``fcd_factory``    ``start(data_dir=None, extra_args=(), extra_env=None) -> FcdServer`` for
                     extra servers (restart tests, other flags or environment)
* ``registries``     session-scoped OCI registries on loopback with the custom-container test
                     images (registrykit.Registries: ``.open``, ``.auth``, ``.images``)
* ``client``         2021-04-06 SDK client of the session server
* ``classic_client`` aliyun-fc2 client of the session server
* ``new_service``    ``new_service(name=None, **kwargs) -> name``, removed with its functions afterwards
* ``service``        one fresh empty service name

When a test fails, the tail of the stdout/stderr of the servers it used is attached to the report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

import fc2
from alibabacloud_fc_open20210406.client import Client

from fcdkit import _ALL_SERVERS, FcdServer, ServiceFactory, _new_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "invoke: tests that run user code through InvokeFunction (deselect with -m 'not invoke')",
    )
    config.addinivalue_line(
        "markers",
        "slow: tests that wait about a minute of wall time (deselect with -m 'not slow')",
    )


@pytest.fixture(scope="session")
def fcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FcdServer]:
    """The shared fcd server of the whole test session.

    With ``FCD_TEST_CLUSTER=N`` it is a cluster instead: N nodes on PostgreSQL and NATS behind a
    round-robin load balancer (``clusterkit.FcdCluster``), so every test of the suite runs with
    its requests spread over the nodes.
    """
    base = tmp_path_factory.mktemp("fcd-session")
    nodes = int(os.environ.get("FCD_TEST_CLUSTER", "0") or 0)
    if nodes > 0:
        from clusterkit import FcdCluster

        cluster = FcdCluster(base, owner="session", n=nodes)
        cluster.start()
        yield cluster
        cluster.stop()
        return
    server = _new_server(base, owner="session")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fcd_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., FcdServer]]:
    """Starts extra servers, e.g. for restart tests:
    ``start(data_dir=None, extra_args=(), extra_env=None) -> FcdServer``.

    Calling it twice with the same ``data_dir`` gives two servers over the same data (stop the
    first one before starting the second). Every server started here is stopped at teardown.
    """
    started: list[FcdServer] = []
    counter = iter(range(1_000_000))

    def start(
        data_dir: Optional[Path] = None,
        extra_args: tuple[str, ...] = (),
        extra_env: Optional[dict] = None,
    ) -> FcdServer:
        base = tmp_path / f"fcd-{next(counter)}"
        server = _new_server(
            base, owner=request.node.nodeid, data_dir=data_dir,
            extra_args=extra_args, extra_env=extra_env,
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory):
    """Two OCI registries on loopback serving the custom-container test images (built by
    scripts/container-fixtures): ``.open`` (anonymous) and ``.auth`` (htpasswd,
    registrykit.AUTH_USER / AUTH_PASSWORD); ``.images`` is the fixtures' images.json."""
    from registrykit import Registries

    regs = Registries(tmp_path_factory.mktemp("registries"))
    regs.start()
    yield regs
    regs.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for server in _ALL_SERVERS:
        if server.owner in ("session", item.nodeid):
            report.sections.append((f"fcd logs ({server.owner})", server.logs()))


@pytest.fixture(scope="session")
def client(fcd: FcdServer) -> Client:
    return fcd.client()


@pytest.fixture(scope="session")
def classic_client(fcd: FcdServer) -> fc2.Client:
    return fcd.classic_client()


@pytest.fixture(scope="session")
def fc3(fcd: FcdServer):
    """An FC 3.0 (alibabacloud-fc20230330) client of the session's server."""
    return fcd.fc3_client()


@pytest.fixture
def new_service(client: Client) -> Iterator[ServiceFactory]:
    """``new_service(name=None, **CreateServiceRequest kwargs) -> name``; cleaned up afterwards."""
    factory = ServiceFactory(client)
    yield factory
    factory.cleanup()


@pytest.fixture
def service(new_service: ServiceFactory) -> str:
    """A fresh, empty service owned by this test."""
    return new_service()
