"""Pytest fixtures for the console's browser tests (helpers in consolekit.py).

Fixtures:

* ``fcd``      session-scoped real ``fcd serve`` (tests/sdk/fcdkit.py's server helper, FCD_BIN)
* ``client``   the root's 2021-04-06 SDK client of that server (setting up and checking results)
* ``console``  a fresh headless Chromium on ``http://<addr>/console`` (``consolekit.Console``),
               quit at teardown; a failing test gets a ``FAILED`` screenshot, the page's text,
               its browser console messages and the server's log tail in its report
* ``iam``      RAM users and policies through the RAM SDK (tests/sdk/ramkit.py), removed afterwards
* ``new_service`` / ``deployed`` services (and a python function) made through the SDK
"""

from __future__ import annotations

import re
import shutil
from typing import Iterator

import pytest

from consolekit import HANDLER, SHOTS, Console, new_driver  # also puts tests/sdk on sys.path

from fcdkit import _ALL_SERVERS, FcdServer, ServiceFactory, _new_server, create_function, unique
from ramkit import RamFixture


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "invoke: tests that run user code through InvokeFunction (deselect with -m 'not invoke')",
    )


@pytest.fixture(scope="session")
def fcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FcdServer]:
    # This run's screenshots only (the CI artifacts), none left from an earlier run.
    shutil.rmtree(SHOTS, ignore_errors=True)
    server = _new_server(tmp_path_factory.mktemp("fcd-console"), owner="session")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(fcd: FcdServer):
    return fcd.client()


@pytest.fixture
def new_service(client) -> Iterator[ServiceFactory]:
    factory = ServiceFactory(client)
    yield factory
    factory.cleanup()


@pytest.fixture
def deployed(client, new_service) -> tuple[str, str]:
    """A fresh service with python function ``f`` (HANDLER), made through the SDK."""
    svc = new_service(unique("svc"))
    create_function(client, svc, "f", files={"index.py": HANDLER})
    return svc, "f"


@pytest.fixture
def iam(fcd: FcdServer) -> Iterator[RamFixture]:
    fixture = RamFixture(fcd.addr)
    yield fixture
    fixture.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
    if not report.failed:
        return
    console = getattr(item, "console_under_test", None)
    if console is not None:
        report.sections.append(("console page", console.page_state()))
        messages = "\n".join(f"{m.get('level')} {m.get('message')}" for m in console.browser_log())
        report.sections.append(("browser console", messages or "(no messages)"))
    for server in _ALL_SERVERS:
        if server.owner in ("session", item.nodeid):
            report.sections.append((f"fcd logs ({server.owner})", server.logs()))


def _short(nodeid: str) -> str:
    name = nodeid.split("::")[-1].removeprefix("test_")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


@pytest.fixture
def console(request: pytest.FixtureRequest, fcd: FcdServer) -> Iterator[Console]:
    driver = new_driver()
    c = Console(driver, fcd.addr, _short(request.node.nodeid))
    request.node.console_under_test = c
    try:
        yield c
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            try:
                c.shot("FAILED")
            except Exception:
                pass
        driver.quit()

