"""Tests for fcd's embedded Python runtime bootstrap.

The bootstrap (crates/fcd-runtime/src/runtimes/python/bootstrap.py) is started the way
fcd starts it -- ``python3 -u -X utf8 bootstrap.py`` with cwd = code dir -- on
a free loopback port, and driven over HTTP/1.1 keep-alive with http.client.

Run from the repository root:  python3 -m pytest -q tests/runtime/test_python_bootstrap.py
Set FCD_TEST_PYTHON to run the bootstrap under another interpreter (e.g. 3.9).
Timings are printed (run with -s to see them), never asserted.
"""

import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from bootstrap_kit import (call, free_port, header_values, http_invoke, new_rid, raw_latency,
                           time_to_accept)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOOTSTRAP = os.path.join(ROOT, "crates", "fcd-runtime", "src", "runtimes", "python", "bootstrap.py")
PYTHON = os.environ.get("FCD_TEST_PYTHON") or sys.executable
TIMEOUT = 60  # generous: only guards against hangs, never decides pass/fail

INDEX_PY = '''
import json
import logging
import os
import sys
import threading

counter = 0
init_count = 0
init_value = None
a_started = threading.Event()
b_started = threading.Event()


def initializer(context):
    global init_count, init_value
    init_count += 1
    init_value = "initialized:" + context.request_id


def bad_initializer(context):
    raise RuntimeError("init failed")


def init_state(event, context):
    return {"init_count": init_count, "init_value": init_value}


def echo(event, context):
    assert isinstance(event, bytes)
    return event


def ret_str(event, context):
    return "hello \\u4e16\\u754c"


def ret_bytes(event, context):
    return b"\\x00\\xffraw"


def ret_bytearray(event, context):
    return bytearray(b"ba")


def ret_dict(event, context):
    return {"b": 1, "a": [1, 2], "c": {"z": None, "y": True}}


def ret_none(event, context):
    return None


def noop(event, context):
    pass


class HasToJson(object):
    def to_json(self):
        return {"via": "to_json"}


def ret_special(event, context):
    import datetime
    import decimal
    return {"dec": decimal.Decimal("1.5"),
            "dt": datetime.datetime(2020, 7, 8, 11, 54, 44),
            "d": datetime.date(2021, 1, 2),
            "obj": HasToJson()}


def ret_unserializable(event, context):
    return {"x": object()}


def count(event, context):
    global counter
    counter += 1
    return str(counter)


def ctx(event, context):
    c = context
    return {
        "request_id": c.request_id,
        "requestId": c.requestId,
        "cred": [c.credentials.access_key_id, c.credentials.access_key_secret,
                 c.credentials.security_token],
        "cred_camel": [c.credentials.accessKeyId, c.credentials.accessKeySecret,
                       c.credentials.securityToken],
        "function": [c.function.name, c.function.handler, c.function.memory,
                     c.function.timeout, c.function.initializer,
                     c.function.initialization_timeout],
        "service": [c.service.name, c.service.log_project, c.service.log_store,
                    c.service.qualifier, c.service.version_id],
        "region": c.region,
        "account_id": c.account_id,
        "retry_count": c.retry_count,
        "tracing": [c.tracing.span_context, c.tracing.jaeger_endpoint,
                    c.tracing.span_baggages],
    }


def _helper():
    raise ValueError("something is wrong")


def raise_error(event, context):
    _helper()


def log(event, context):
    msg = event.decode()
    logging.info("root %s", msg)
    logging.debug("debug-hidden %s", msg)
    context.getLogger().info("ctx %s", msg)
    print("printed " + msg)
    return "logged"


def log_a(event, context):
    # Holds until request B is inside its handler, then logs.
    a_started.set()
    b_started.wait(60)
    context.getLogger().info("ctx-A")
    logging.info("root-A")
    return "a"


def log_b(event, context):
    a_started.wait(60)
    b_started.set()
    return "b"


def env(event, context):
    return {"fc": sorted(k for k in os.environ if k.startswith("FC_")),
            "user": os.environ.get("MY_USER_VAR"),
            "path0": sys.path[0],
            "cwd": os.getcwd()}


def exit_now(event, context):
    sys.exit(3)


def pre_stop(context):
    print("pre-stop ran " + context.request_id)


def pre_freeze_fail(context):
    raise KeyError("freeze")


not_callable = 5
'''

# The role's credentials as user code sees them: context.credentials in both name styles (and
# in to_json) for the handler, the initializer and the hooks, and the environment. Nothing here
# prints them: the tests check they never reach the output.
CREDS_PY = '''
import os

seen = {}
ENV = ["ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
       "ALIBABA_CLOUD_SECURITY_TOKEN"]


def _seen(context):
    c = context.credentials
    return {"snake": [c.access_key_id, c.access_key_secret, c.security_token],
            "camel": [c.accessKeyId, c.accessKeySecret, c.securityToken],
            "json": context.to_json()["credentials"]}


def initializer(context):
    seen["initialize"] = _seen(context)


def pre_freeze(context):
    seen["pre_freeze"] = _seen(context)


def pre_stop(context):
    seen["pre_stop"] = _seen(context)


def handler(event, context):
    return {"invoke": _seen(context), "hooks": seen,
            "env": {k: os.environ.get(k) for k in ENV}}


def fail(event, context):
    raise RuntimeError("failed with credentials in the context")


def fail_hook(context):
    raise RuntimeError("hook failed with credentials in the context")
'''

# WSGI apps for the HTTP-trigger tests.
WEB_PY = r'''
import json
import sys
import threading
from wsgiref.validate import validator

closed = []
a_started = threading.Event()
b_started = threading.Event()

_CGI = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
        "CONTENT_LENGTH", "REMOTE_ADDR", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL")


def _report(environ, start_response):
    # The validator insists on WSGI 1.0's read(size).
    body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
    ctx = environ["fc.context"]
    out = {k: environ[k] for k in _CGI}
    out["http"] = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    out["wsgi"] = {k: environ[k] for k in ("wsgi.version", "wsgi.url_scheme", "wsgi.multithread",
                                           "wsgi.multiprocess", "wsgi.run_once")}
    environ["wsgi.errors"].write("wsgi.errors line %s\n" % ctx.request_id)
    environ["wsgi.errors"].flush()
    out["request_uri"] = environ["fc.request_uri"]
    out["body"] = body.hex()
    out["context"] = {"request_id": ctx.request_id, "handler": ctx.function.handler,
                      "key": ctx.credentials.access_key_id, "memory": ctx.function.memory}
    out["user_env"] = environ.get("MY_USER_VAR")
    # Frameworks (Werkzeug, Django) read PATH_INFO as latin-1 characters of UTF-8 bytes.
    out["path_utf8"] = environ["PATH_INFO"].encode("latin-1").decode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out).encode("utf-8")]


# wsgiref's validator checks both sides of the protocol: the environ the server built, and
# that the server drives the app's iterable and calls its close().
report = validator(_report)


def binary(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("207 Multi-Status", [
        ("Content-Type", "application/octet-stream"),
        ("Set-Cookie", "a=1; Path=/"),
        ("Set-Cookie", "b=2; HttpOnly"),
        ("X-Mixed-Case", "Value With Case"),
    ])
    return [bytes(range(256)), body[::-1]]


class Closing(object):
    def __init__(self, tag):
        self.tag = tag

    def __iter__(self):
        yield b"it-"
        yield b""
        yield bytearray(b"erable")

    def close(self):
        closed.append(self.tag)


def writer(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written-")
    return Closing(environ["QUERY_STRING"])


def closed_tags(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(closed).encode()]


def generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"gen-"
    yield b"erated"


def str_items(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return ["caf\u00e9"]


def reserved_headers(environ, start_response):
    start_response("200 OK", [("x-fc-status", "404"), ("X-Fc-Error-Type", "Nope"),
                              ("Content-Length", "999"), ("Transfer-Encoding", "chunked"),
                              ("Connection", "close"), ("X-Kept", "yes")])
    return [b"fine"]


def no_content(environ, start_response):
    start_response("204 No Content", [("X-Kept", "yes")])
    return [b""]


def error_page(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise KeyError("late")
    except KeyError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                       sys.exc_info())
    return [b"error page"]


def error_after_body(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial")
    try:
        raise KeyError("after the body started")
    except KeyError:
        start_response("500 Internal Server Error", [], sys.exc_info())
    return [b"never"]


def _helper():
    raise ValueError("wsgi broke")


def raising(environ, start_response):
    _helper()


def raising_in_iterable(environ, start_response):
    start_response("200 OK", [])

    def body():
        yield b"x"
        raise RuntimeError("mid-body")
    return body()


def no_start(environ, start_response):
    return [b"body without start_response"]


def never_starts(environ, start_response):
    return []


def bad_status(environ, start_response):
    start_response("OK", [])
    return [b""]


def non_bytes_item(environ, start_response):
    start_response("200 OK", [])
    return [b"ok", 42]


def header_injection(environ, start_response):
    start_response("200 OK", [("X-A", "a\r\nX-Injected: 1")])
    return [b""]


def start_twice(environ, start_response):
    start_response("200 OK", [])
    start_response("201 Created", [])
    return [b""]


def slow_a(environ, start_response):
    a_started.set()
    b_started.wait(60)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("a:" + environ["fc.context"].request_id).encode()]


def slow_b(environ, start_response):
    a_started.wait(60)
    b_started.set()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("b:" + environ["fc.context"].request_id).encode()]


# A small framework in the style of Flask: routes on the decoded path and method, reads the
# query and the form, sets cookies.
def mini_framework(environ, start_response):
    from urllib.parse import parse_qs
    path = environ["PATH_INFO"].encode("latin-1").decode("utf-8")
    method = environ["REQUEST_METHOD"]
    if path.startswith("/users/") and method == "GET":
        name = path[len("/users/"):]
        q = parse_qs(environ["QUERY_STRING"])
        out = json.dumps({"user": name, "fields": q.get("f", [])}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(out)))])
        return [out]
    if path == "/login" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(length).decode())
        start_response("302 Found", [("Location", "/home"),
                                     ("Set-Cookie", "session=" + form["user"][0]),
                                     ("Set-Cookie", "theme=dark")])
        return [b""]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [("no route for %s %s" % (method, path)).encode("utf-8")]
'''

# A real Flask app (Flask comes from tests/sdk/requirements.txt; the bootstrap runs on the
# test interpreter, so it is importable as a function's vendored dependency would be).
FLASK_PY = r"""
from flask import Flask, jsonify, make_response, request

app = Flask(__name__)


@app.route("/users/<name>", methods=["GET", "POST"])
def user(name):
    return jsonify(name=name, q=request.args.getlist("q"), ip=request.remote_addr,
                   form=request.form.to_dict(), data=request.get_data().hex(),
                   host=request.host, rid=request.environ["fc.context"].request_id)


@app.route("/cookie")
def cookie():
    r = make_response(b"\x00\xff", 201)
    r.set_cookie("a", "1")
    r.set_cookie("b", "2")
    r.headers["Content-Type"] = "application/octet-stream"
    return r


@app.route("/boom")
def boom():
    raise RuntimeError("flask boom")


handler = app
"""

FILES = {
    "index.py": INDEX_PY,
    "creds.py": CREDS_PY,
    "web.py": WEB_PY,
    "flask_app.py": FLASK_PY,
    "syntax_err.py": "def handler(event, context)\n    return 1\n",
    "import_err.py": "import this_module_does_not_exist_fcd\n\ndef handler(e, c):\n    return 1\n",
    "init_err.py": "raise RuntimeError('boom at import')\n",
    "flaky.py": textwrap.dedent('''
        import os
        if not os.path.exists(os.path.join(os.path.dirname(__file__), "flaky_ok")):
            raise ImportError("not yet")

        def handler(event, context):
            return "flaky ok"
        '''),
    "pkg/sub/mod.py": "def handler(event, context):\n    return 'nested ' + __name__\n",
    # No logging until a module imports it: the bootstrap configures it on that import.
    "logless.py": ("import sys\n\n\ndef handler(event, context):\n"
                   "    return str('logging' in sys.modules)\n"),
    "importlog.py": ("import logging\n\nlogging.getLogger('lib').info('imported importlog')\n\n\n"
                     "def handler(event, context):\n    logging.warning('called importlog')\n"
                     "    return 'ok'\n"),
    "ctxlog.py": ("def handler(event, context):\n"
                  "    context.getLogger().info('ctx first')\n    return 'ok'\n"),
}


def make_code_dir(path):
    for rel, text in FILES.items():
        full = os.path.join(str(path), rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return str(path)


class Server(object):
    """One bootstrap process.

    With ``prewarmed=True`` it is started the way fcd starts a prewarmed instance: with only
    the function-independent environment and FCD_ASSIGNMENT_FD naming a pipe, on which the
    function's environment and directory then arrive.
    """

    def __init__(self, code_dir, log_dir, extra_env=None, prewarmed=False):
        self.code_dir = code_dir
        self.port = free_port()
        self.stdout_path = os.path.join(str(log_dir), "stdout-%d.log" % self.port)
        self.stderr_path = os.path.join(str(log_dir), "stderr-%d.log" % self.port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FC_")}
        env.update({
            "FC_FUNC_CODE_PATH": code_dir,
            "FC_SERVER_PORT": str(self.port),
            "FC_CUSTOM_LISTEN_PORT": str(self.port),
            "FC_FUNCTION_HANDLER": "index.echo",
            "FC_FUNCTION_MEMORY_SIZE": "128",
            "FC_FUNCTION_NAME": "fn",
            "FC_SERVICE_NAME": "svc",
            "FC_REGION": "cn-hangzhou",
            "FC_ACCOUNT_ID": "1234",
            "FC_INSTANCE_ID": "inst-1",
            "FC_QUALIFIER": "LATEST",
            "FC_VER_ID": "LATEST",
            "FC_RUNTIME_VERSION": "python3.10",
            "FC_SERVER_LOG_LEVEL": "INFO",
            "FC_FUNCTION_INITIALIZER": "index.initializer",
            "FC_SECRET_INTERNAL": "must-not-leak",
            "MY_USER_VAR": "user-value",
        })
        env.update(extra_env or {})
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.t_start = time.perf_counter()
        if prewarmed:
            base = {k: v for k, v in os.environ.items() if not k.startswith("FC_")}
            base.update({"HOME": "/tmp", "TZ": "UTC", "FC_FUNC_CODE_PATH": "/code"})
            rfd, wfd = os.pipe()
            base["FCD_ASSIGNMENT_FD"] = str(rfd)
            self.proc = subprocess.Popen(
                [PYTHON, "-u", "-X", "utf8", BOOTSTRAP], cwd="/", env=base, pass_fds=(rfd,),
                stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err)
            os.close(rfd)
            os.write(wfd, json.dumps({"env": env, "cwd": code_dir}).encode())
            os.close(wfd)
        else:
            self.proc = subprocess.Popen(
                [PYTHON, "-u", "-X", "utf8", BOOTSTRAP], cwd=code_dir, env=env,
                stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err)
        self.t_connect = self.wait_ready()

    def wait_ready(self):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("bootstrap exited with %s: %s"
                                     % (self.proc.returncode, self.stderr()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                return time.perf_counter() - self.t_start
            except OSError:
                time.sleep(0.001)
        raise AssertionError("bootstrap did not listen in time: " + self.stderr())

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        self._out.close()
        self._err.close()


def assert_failure(status, headers, body, error_type, message=None):
    assert status == 404, body
    assert headers["x-fc-status"] == "404"
    assert headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert headers["content-type"] == "application/json"
    err = json.loads(body)
    assert err["errorType"] == error_type, err
    if message is not None:
        assert err["errorMessage"] == message, err
    assert isinstance(err["stackTrace"], list)
    for frame in err["stackTrace"]:
        assert isinstance(frame, list) and len(frame) == 4, frame
        assert all(isinstance(x, str) for x in frame), frame
        assert "bootstrap.py" not in frame[0], frame
    return err


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def code_dir(tmp_path_factory):
    return make_code_dir(tmp_path_factory.mktemp("code"))


@pytest.fixture(scope="module")
def server(code_dir, tmp_path_factory):
    srv = Server(code_dir, tmp_path_factory.mktemp("logs"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def conn(server):
    c = server.connection()
    yield c
    c.close()


@pytest.fixture()
def fresh_server(code_dir, tmp_path):
    servers = []

    def start(**kw):
        s = Server(code_dir, tmp_path, **kw)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


# ---------------------------------------------------------------------------
# Return values and events
# ---------------------------------------------------------------------------

def test_return_str(conn):
    status, headers, body = call(conn, handler="index.ret_str")
    assert status == 200
    assert headers["x-fc-status"] == "200"
    assert "x-fc-error-type" not in headers
    assert body == "hello \u4e16\u754c".encode("utf-8")


def test_return_bytes_and_bytearray(conn):
    assert call(conn, handler="index.ret_bytes")[2] == b"\x00\xffraw"
    assert call(conn, handler="index.ret_bytearray")[2] == b"ba"


def test_return_dict_is_pretty_sorted_json(conn):
    status, _, body = call(conn, handler="index.ret_dict")
    assert status == 200
    expected = json.dumps({"b": 1, "a": [1, 2], "c": {"z": None, "y": True}},
                          indent=4, sort_keys=True)
    assert body.decode() == expected
    assert body.startswith(b'{\n    "a": [\n')


def test_return_none_is_empty(conn):
    status, headers, body = call(conn, handler="index.ret_none")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == "0"


def test_return_special_types(conn):
    status, _, body = call(conn, handler="index.ret_special")
    assert status == 200
    assert json.loads(body) == {"dec": 1.5, "dt": "2020-07-08T11:54:44",
                                "d": "2021-01-02", "obj": {"via": "to_json"}}


def test_unserializable_result_is_error(conn):
    assert_failure(*call(conn, handler="index.ret_unserializable"), error_type="TypeError")


def test_binary_event_all_bytes(conn):
    event = bytes(range(256)) * 4
    status, _, body = call(conn, body=event, handler="index.echo")
    assert status == 200
    assert body == event


def test_default_handler_from_env(conn):
    # No x-fc-function-handler header: FC_FUNCTION_HANDLER (index.echo) is used.
    assert call(conn, body=b"dflt")[2] == b"dflt"


def test_large_body_5mb(conn):
    event = os.urandom(5 * 1024 * 1024)
    status, _, body = call(conn, body=event, handler="index.echo")
    assert status == 200
    assert len(body) == len(event)
    assert body == event


def test_chunked_request_body(conn):
    chunks = [b"abc", b"", b"defg" * 1000, bytes(range(256))]
    status, _, body = call(conn, body=iter([c for c in chunks if c]), handler="index.echo",
                           encode_chunked=True)
    assert status == 200
    assert body == b"".join(chunks)


def test_nested_module_path(conn):
    status, _, body = call(conn, handler="pkg/sub/mod.handler")
    assert (status, body) == (200, b"nested pkg.sub.mod")


# ---------------------------------------------------------------------------
# Context
# ---------------------------------------------------------------------------

def test_context_fields(conn):
    rid = new_rid()
    baggage = base64.b64encode(json.dumps({"k": "v"}).encode()).decode()
    status, _, body = call(conn, handler="index.ctx", rid=rid, headers={
        "x-fc-access-key-id": "STS.id",
        "x-fc-access-key-secret": "secret",
        "x-fc-security-token": "token",
        "x-fc-function-name": "myfunc",
        "x-fc-function-memory": "512",
        "x-fc-function-timeout": "30",
        "x-fc-function-initializer": "index.initializer",
        "x-fc-initialization-timeout": "10",
        "x-fc-service-name": "mysvc",
        "x-fc-service-logproject": "proj",
        "x-fc-service-logstore": "store",
        "x-fc-qualifier": "prod",
        "x-fc-version-id": "3",
        "x-fc-region": "cn-shanghai",
        "x-fc-account-id": "9876",
        "x-fc-retry-count": "2",
        "x-fc-tracing-opentracing-span-context": "span-ctx",
        "x-fc-tracing-jaeger-endpoint": "http://jaeger",
        "x-fc-tracing-opentracing-span-baggages": baggage,
    })
    assert status == 200, body
    c = json.loads(body)
    assert c["request_id"] == rid
    assert c["requestId"] == rid
    assert c["cred"] == ["STS.id", "secret", "token"]
    assert c["cred_camel"] == c["cred"]
    assert c["function"] == ["myfunc", "index.ctx", 512, 30, "index.initializer", 10]
    assert c["service"] == ["mysvc", "proj", "store", "prod", "3"]
    assert c["region"] == "cn-shanghai"
    assert c["account_id"] == "9876"
    assert c["retry_count"] == 2
    assert c["tracing"] == ["span-ctx", "http://jaeger", {"k": "v"}]


def test_context_defaults(conn):
    status, _, body = call(conn, handler="index.ctx")
    c = json.loads(body)
    assert c["retry_count"] == 0
    assert c["tracing"][2] == {}
    assert c["function"][0] == "fn"        # from FC_FUNCTION_NAME
    assert c["service"][0] == "svc"        # from FC_SERVICE_NAME
    assert c["region"] == "cn-hangzhou"    # from FC_REGION


def cred_headers(tag):
    return {"x-fc-access-key-id": "STS.%s" % tag,
            "x-fc-access-key-secret": "secret-%s" % tag,
            "x-fc-security-token": "token-%s" % tag}


def cred_view(tag):
    """context.credentials for the headers of cred_headers(tag), as creds._seen reports it."""
    if tag is None:
        values = ["", "", ""]
    else:
        values = ["STS.%s" % tag, "secret-%s" % tag, "token-%s" % tag]
    return {"snake": values, "camel": values,
            "json": {"accessKeyId": values[0], "accessKeySecret": values[1],
                     "securityToken": values[2]}}


CRED_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.env",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret-env",
            "ALIBABA_CLOUD_SECURITY_TOKEN": "token-env"}


@pytest.mark.parametrize("prewarmed", [False, True], ids=["fresh", "prewarmed"])
def test_credentials_per_call_in_every_context_never_logged(fresh_server, prewarmed):
    srv = fresh_server(extra_env=CRED_ENV, prewarmed=prewarmed)
    c = srv.connection()
    status, _, body = call(c, path="/initialize", headers=dict(
        cred_headers("init"), **{"x-fc-function-initializer": "creds.initializer"}))
    assert (status, body) == (200, b"")
    status, _, body = call(c, path="/pre-freeze", method="GET", headers=dict(
        cred_headers("freeze"), **{"x-fc-instance-lifecycle-pre-freeze-handler": "creds.pre_freeze"}))
    assert (status, body) == (200, b"")
    status, _, body = call(c, path="/pre-stop", method="GET", headers=dict(
        cred_headers("stop"), **{"x-fc-instance-lifecycle-pre-stop-handler": "creds.pre_stop"}))
    assert (status, body) == (200, b"")

    status, _, body = call(c, handler="creds.handler", headers=cred_headers("one"))
    assert status == 200, body
    got = json.loads(body)
    assert got["invoke"] == cred_view("one")
    assert got["hooks"] == {"initialize": cred_view("init"), "pre_freeze": cred_view("freeze"),
                            "pre_stop": cred_view("stop")}
    # The environment's credentials (from the process start, or the assignment) are kept.
    assert got["env"] == CRED_ENV

    # Per call: the next invocation sees its own headers, and none when it has none.
    assert json.loads(call(c, handler="creds.handler",
                           headers=cred_headers("two"))[2])["invoke"] == cred_view("two")
    assert json.loads(call(c, handler="creds.handler")[2])["invoke"] == cred_view(None)

    # Failures (whose errors are printed) and hook failures print no credential either.
    assert call(c, handler="creds.fail", headers=cred_headers("fail"))[0] == 404
    assert call(c, path="/pre-freeze", method="GET", headers=dict(
        cred_headers("hookfail"),
        **{"x-fc-instance-lifecycle-pre-freeze-handler": "creds.fail_hook"}))[0] == 404
    c.close()
    out = srv.stdout() + srv.stderr()
    assert "failed with credentials in the context" in out
    assert "hook failed with credentials in the context" in out
    for tag in ("init", "freeze", "stop", "one", "two", "fail", "hookfail", "env"):
        for secret in ("secret-" + tag, "token-" + tag):
            assert secret not in out, secret


def test_environment_is_scrubbed(conn, code_dir):
    status, _, body = call(conn, handler="index.env")
    e = json.loads(body)
    assert "FC_SECRET_INTERNAL" not in e["fc"]
    assert "FC_SERVER_LOG_LEVEL" not in e["fc"]
    assert "FC_FUNCTION_INITIALIZER" not in e["fc"]
    for keep in ("FC_SERVER_PORT", "FC_CUSTOM_LISTEN_PORT", "FC_FUNC_CODE_PATH",
                 "FC_FUNCTION_HANDLER", "FC_INSTANCE_ID", "FC_REGION"):
        assert keep in e["fc"]
    assert e["user"] == "user-value"
    assert os.path.realpath(e["path0"]) == os.path.realpath(code_dir)
    assert os.path.realpath(e["cwd"]) == os.path.realpath(code_dir)


def test_warm_state_persists(conn):
    first = int(call(conn, handler="index.count")[2])
    second = int(call(conn, handler="index.count")[2])
    third = int(call(conn, handler="index.count")[2])
    assert (second, third) == (first + 1, first + 2)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

def test_raising_handler(server, conn):
    rid = new_rid()
    err = assert_failure(*call(conn, handler="index.raise_error", rid=rid),
                         error_type="ValueError", message="something is wrong")
    trace = err["stackTrace"]
    assert len(trace) >= 2
    assert trace[-1][0].startswith('File "') and trace[-1][0].endswith('index.py"')
    assert re.match(r"^line \d+$", trace[-1][1])
    assert trace[-1][2] == "in _helper"
    assert trace[-1][3] == 'raise ValueError("something is wrong")'
    assert trace[-2][2] == "in raise_error"
    assert "Traceback (most recent call last)" in server.stderr()
    assert "ValueError: something is wrong" in server.stderr()
    assert ("FC Invoke End RequestId: %s, Error: Unhandled function error\n" % rid
            in server.stdout())
    # The instance keeps serving afterwards.
    assert call(conn, body=b"after", handler="index.echo")[2] == b"after"


@pytest.mark.parametrize("handler,error_type,message", [
    ("nodot", "InvalidHandleName", "Invalid handler 'nodot'"),
    ("import_err.handler", "ImportModuleError", "Unable to import module 'import_err'"),
    ("no_such_module.handler", "ImportModuleError", "Unable to import module 'no_such_module'"),
    ("syntax_err.handler", "UserCodeSyntaxError", "Syntax error in module 'syntax_err'"),
    ("index.nope", "HandlerNotFound", "Handler 'nope' is missing on module 'index'"),
    ("init_err.handler", "UserCodeError", "Module initialization error: 'boom at import'"),
])
def test_handler_load_errors(conn, handler, error_type, message):
    assert_failure(*call(conn, handler=handler), error_type=error_type, message=message)


def test_not_callable_handler(conn):
    assert_failure(*call(conn, handler="index.not_callable"), error_type="TypeError")


def test_failed_import_is_retried(conn, code_dir):
    assert_failure(*call(conn, handler="flaky.handler"), error_type="ImportModuleError")
    open(os.path.join(code_dir, "flaky_ok"), "w").close()
    status, _, body = call(conn, handler="flaky.handler")
    assert (status, body) == (200, b"flaky ok")


def test_unknown_path(conn):
    status, headers, body = call(conn, path="/nope", method="GET")
    assert status == 404
    assert "errorMessage" in json.loads(body)


def test_sys_exit_in_handler_exits_process(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        call(c, handler="index.exit_now")
    assert srv.proc.wait(TIMEOUT) == 3


# ---------------------------------------------------------------------------
# Logging and markers
# ---------------------------------------------------------------------------

def test_logger_format_and_markers(server, conn):
    rid = new_rid()
    status, _, body = call(conn, body=b"msg-42", handler="index.log", rid=rid)
    assert (status, body) == (200, b"logged")
    err = server.stderr()
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.search(r"^%s %s \[INFO\] root msg-42$" % (ts, re.escape(rid)), err, re.M), err
    assert re.search(r"^%s %s \[INFO\] ctx msg-42$" % (ts, re.escape(rid)), err, re.M), err
    assert "debug-hidden msg-42" not in err
    out = server.stdout()
    start = out.index("FC Invoke Start RequestId: %s\n" % rid)
    printed = out.index("printed msg-42\n")
    end = out.index("FC Invoke End RequestId: %s\n" % rid)
    assert start < printed < end


def test_logging_is_loaded_on_first_use_and_formatted(fresh_server):
    """The bootstrap does not import logging at start-up; when user code does (here at
    module import, during the first request of that module), records already carry FC's
    format, import-time ones included."""
    srv = fresh_server()
    c = srv.connection()
    assert call(c, handler="logless.handler")[2] == b"False"
    rid = new_rid()
    assert call(c, handler="importlog.handler", rid=rid)[2] == b"ok"
    assert call(c, handler="logless.handler")[2] == b"True"
    err = srv.stderr()
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.search(r"^%s %s \[INFO\] imported importlog$" % (ts, re.escape(rid)), err, re.M), err
    assert re.search(r"^%s %s \[WARNING\] called importlog$" % (ts, re.escape(rid)), err, re.M), err
    c.close()


def test_context_logger_before_any_logging_import(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    assert call(c, handler="logless.handler")[2] == b"False"
    rid = new_rid()
    assert call(c, handler="ctxlog.handler", rid=rid)[2] == b"ok"
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    err = srv.stderr()
    assert re.search(r"^%s %s \[INFO\] ctx first$" % (ts, re.escape(rid)), err, re.M), err
    c.close()


def test_context_logger_is_per_request(server):
    ca, cb = server.connection(), server.connection()
    rid_a, rid_b = new_rid(), new_rid()
    result = {}

    def run_a():
        result["a"] = call(ca, handler="index.log_a", rid=rid_a)

    t = threading.Thread(target=run_a)
    t.start()
    # Send B only once A has started (its Start marker is written after the
    # process-global request id was set, before its handler runs).
    deadline = time.monotonic() + TIMEOUT
    while "FC Invoke Start RequestId: %s\n" % rid_a not in server.stdout():
        assert time.monotonic() < deadline, "request A never started"
        time.sleep(0.005)
    assert call(cb, handler="index.log_b", rid=rid_b)[2] == b"b"
    t.join(TIMEOUT)
    assert result["a"][2] == b"a"
    err = server.stderr()
    assert re.search(r"Z %s \[INFO\] ctx-A$" % re.escape(rid_a), err, re.M), err
    # The root logger uses the process-global current id (FC behaviour).
    assert re.search(r"Z %s \[INFO\] root-A$" % re.escape(rid_b), err, re.M), err
    ca.close()
    cb.close()


# ---------------------------------------------------------------------------
# Initializer and lifecycle hooks
# ---------------------------------------------------------------------------

def test_initializer_runs_once(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    # A failing initializer: 404 + JSON, and it may be retried.
    rid0 = new_rid()
    assert_failure(*call(c, path="/initialize",
                         headers={"x-fc-function-initializer": "index.bad_initializer"},
                         rid=rid0),
                   error_type="RuntimeError", message="init failed")
    assert ("FC Initialize End RequestId: %s, Error: Unhandled function error\n" % rid0
            in srv.stdout())
    # Initializer from the header.
    rid1 = new_rid()
    status, headers, body = call(c, path="/initialize", rid=rid1,
                                 headers={"x-fc-function-initializer": "index.initializer"})
    assert (status, body) == (200, b"")
    out = srv.stdout()
    assert out.index("FC Initialize Start RequestId: %s\n" % rid1) < \
        out.index("FC Initialize End RequestId: %s\n" % rid1)
    state = json.loads(call(c, handler="index.init_state")[2])
    assert state == {"init_count": 1, "init_value": "initialized:" + rid1}
    # A second /initialize (here relying on FC_FUNCTION_INITIALIZER) does not rerun it.
    rid2 = new_rid()
    assert call(c, path="/initialize", rid=rid2)[0] == 200
    assert "FC Initialize Start RequestId: %s" % rid2 not in srv.stdout()
    state = json.loads(call(c, handler="index.init_state")[2])
    assert state["init_count"] == 1


def test_initializer_load_error(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    assert_failure(*call(c, path="/initialize",
                         headers={"x-fc-function-initializer": "index.missing"}),
                   error_type="HandlerNotFound")


def test_lifecycle_hooks(server, conn):
    rid = new_rid()
    status, _, body = call(conn, path="/pre-stop", method="GET", rid=rid, headers={
        "x-fc-instance-lifecycle-pre-stop-handler": "index.pre_stop"})
    assert (status, body) == (200, b"")
    out = server.stdout()
    assert out.index("FC PreStop Start RequestId: %s\n" % rid) < \
        out.index("pre-stop ran %s\n" % rid) < out.index("FC PreStop End RequestId: %s\n" % rid)

    rid = new_rid()
    assert_failure(*call(conn, path="/pre-freeze", method="GET", rid=rid, headers={
        "x-fc-instance-lifecycle-pre-freeze-handler": "index.pre_freeze_fail"}),
        error_type="KeyError")
    assert ("FC PreFreeze End RequestId: %s, Error: Unhandled function error\n" % rid
            in server.stdout())

    # POST is accepted too; no handler configured -> 200, empty body.
    for path in ("/pre-stop", "/pre-freeze"):
        for method in ("GET", "POST"):
            status, _, body = call(conn, path=path, method=method)
            assert (status, body) == (200, b"")


# ---------------------------------------------------------------------------
# HTTP functions: WSGI handler(environ, start_response)
# ---------------------------------------------------------------------------

BASE = "/2016-08-15/proxy/svc/fn"


def http_ok(result):
    status, reason, headers, body = result
    assert header_values(headers, "x-fc-status") == ["200"], (status, headers, body)
    assert not header_values(headers, "x-fc-error-type"), body
    return status, reason, headers, body


def http_failure(result, error_type, message=None):
    """An HTTP function's failure is answered exactly like an event's."""
    status, _, headers, body = result
    return assert_failure(status, dict(headers), body, error_type, message)


def test_http_request_reaches_wsgi_environ(server, conn):
    rid = new_rid()
    body = bytes(range(256)) + b"\r\n\x00tail"
    status, _, headers, data = http_ok(http_invoke(
        conn, BASE + "/users/caf%C3%A9%20x/1?a=1&a=2&b=%20+&c", method="PUT", body=body,
        handler="web.report", rid=rid, base_path=BASE, client_ip="203.0.113.7",
        headers=[("Host", "api.example.test"), ("Content-Type", "application/x-custom"),
                 ("Accept", "text/html"), ("Accept", "application/json"),
                 ("X-Forwarded-For", "198.51.100.1"), ("X-Custom_Under", "u"),
                 ("Cookie", "a=1")],
        fc_headers={"x-fc-access-key-id": "STS.http"}))
    assert status == 200
    e = json.loads(data)
    assert e["REQUEST_METHOD"] == "PUT"
    assert e["SCRIPT_NAME"] == ""
    assert e["path_utf8"] == "/users/caf\u00e9 x/1"
    assert e["QUERY_STRING"] == "a=1&a=2&b=%20+&c"
    assert e["CONTENT_TYPE"] == "application/x-custom"
    assert e["CONTENT_LENGTH"] == str(len(body))
    assert e["REMOTE_ADDR"] == "203.0.113.7"
    assert (e["SERVER_NAME"], e["SERVER_PORT"], e["SERVER_PROTOCOL"]) == \
        ("FCRUNTIME", "9000", "HTTP/1.1")
    http = e["http"]
    assert http["HTTP_HOST"] == "api.example.test"
    assert http["HTTP_ACCEPT"] == "text/html,application/json"
    assert http["HTTP_X_FORWARDED_FOR"] == "198.51.100.1, 203.0.113.7"
    assert http["HTTP_X_CUSTOM_UNDER"] == "u"
    assert http["HTTP_COOKIE"] == "a=1"
    # Neither fcd's x-fc-* headers (credentials among them) nor the hop's own headers, nor
    # the two CGI keys (CONTENT_TYPE/CONTENT_LENGTH) as HTTP_*.
    assert not [k for k in http if k.startswith("HTTP_X_FC_")], http
    for k in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_CONNECTION"):
        assert k not in http
    assert e["wsgi"] == {"wsgi.version": [1, 0], "wsgi.url_scheme": "http",
                         "wsgi.multithread": True, "wsgi.multiprocess": False,
                         "wsgi.run_once": False}
    assert "wsgi.errors line %s\n" % rid in server.stderr()
    assert e["request_uri"] == BASE + "/users/caf%C3%A9%20x/1?a=1&a=2&b=%20+&c"
    assert e["body"] == body.hex()
    # The same context object event handlers get; environ inherits the process environment.
    assert e["context"] == {"request_id": rid, "handler": "web.report", "key": "STS.http",
                            "memory": 512}
    assert e["user_env"] == "user-value"
    out = server.stdout()
    assert out.index("FC Invoke Start RequestId: %s\n" % rid) < \
        out.index("FC Invoke End RequestId: %s\n" % rid)


def test_http_defaults_for_a_bodyless_get(conn):
    _, _, _, data = http_ok(http_invoke(conn, BASE, handler="web.report", base_path=BASE))
    e = json.loads(data)
    # The base path alone is the function's root; no query, no body.
    assert (e["PATH_INFO"], e["QUERY_STRING"], e["CONTENT_LENGTH"], e["body"]) == ("/", "", "0", "")
    assert e["CONTENT_TYPE"] == "application/octet-stream"


@pytest.mark.parametrize("target,base,path", [
    (BASE + "/a/b", BASE, "/a/b"),
    (BASE + "/", BASE, "/"),
    (BASE, BASE, "/"),
    # A custom domain: no base path, the handler sees the whole path.
    ("/a/b", None, "/a/b"),
    ("/", None, "/"),
    # The prefix is cut only at a segment boundary.
    (BASE + "x/y", BASE, BASE + "x/y"),
])
def test_http_base_path(conn, target, base, path):
    _, _, _, data = http_ok(http_invoke(conn, target, handler="web.report", base_path=base))
    assert json.loads(data)["PATH_INFO"] == path


@pytest.mark.parametrize("path,method", [("/invoke", "POST"), ("/initialize", "POST"),
                                         ("/pre-stop", "GET")])
def test_http_header_decides_not_the_path(conn, path, method):
    _, _, _, data = http_ok(http_invoke(conn, path + "?q=1", method=method, body=b"x",
                                        handler="web.report"))
    e = json.loads(data)
    assert (e["REQUEST_METHOD"], e["PATH_INFO"], e["QUERY_STRING"]) == (method, path, "q=1")


def test_http_response_status_headers_and_binary_body(conn):
    body = os.urandom(4096)
    status, reason, headers, data = http_ok(http_invoke(
        conn, BASE + "/bin", method="POST", body=body, handler="web.binary", base_path=BASE))
    assert (status, reason) == (207, "Multi-Status")
    assert data == bytes(range(256)) + body[::-1]
    assert header_values(headers, "set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert header_values(headers, "content-type") == ["application/octet-stream"]
    assert header_values(headers, "content-length") == [str(len(data))]
    # Names keep their case on the wire.
    status, _, raw_headers, _ = http_invoke(conn, "/", handler="web.binary")
    assert any(k == "x-mixed-case" and v == "Value With Case" for k, v in raw_headers)


def test_http_write_callable_and_close(conn):
    _, _, _, data = http_ok(http_invoke(conn, "/w?tag-1", handler="web.writer"))
    assert data == b"written-it-erable"
    _, _, _, data = http_ok(http_invoke(conn, "/", handler="web.closed_tags"))
    assert "tag-1" in json.loads(data)
    assert http_ok(http_invoke(conn, "/", handler="web.generator"))[3] == b"gen-erated"


def test_http_str_items_are_utf8_as_on_fc(conn):
    assert http_ok(http_invoke(conn, "/", handler="web.str_items"))[3] == "caf\u00e9".encode()


def test_http_reserved_response_headers_are_dropped(conn):
    status, _, headers, data = http_ok(http_invoke(conn, "/", handler="web.reserved_headers"))
    assert (status, data) == (200, b"fine")
    assert header_values(headers, "x-fc-status") == ["200"]
    assert header_values(headers, "content-length") == ["4"]
    assert header_values(headers, "x-kept") == ["yes"]
    for name in ("x-fc-error-type", "transfer-encoding", "connection"):
        assert not header_values(headers, name), headers
    # The connection stays usable.
    assert call(conn, body=b"still", handler="index.echo")[2] == b"still"


def test_http_no_content_and_head(conn):
    status, _, headers, data = http_ok(http_invoke(conn, "/", handler="web.no_content"))
    assert (status, data) == (204, b"")
    assert header_values(headers, "x-kept") == ["yes"]
    assert not header_values(headers, "content-length")
    # HEAD: the length of what GET would send, no body bytes (the connection stays in sync).
    status, _, headers, data = http_ok(http_invoke(conn, "/", method="HEAD",
                                                   handler="web.generator"))
    assert (status, data) == (200, b"")
    assert header_values(headers, "content-length") == ["10"]
    assert http_ok(http_invoke(conn, "/", handler="web.generator"))[3] == b"gen-erated"


def test_http_error_page_through_exc_info(conn):
    status, reason, _, data = http_ok(http_invoke(conn, "/", handler="web.error_page"))
    assert (status, reason, data) == (500, "Internal Server Error", b"error page")


def test_http_raising_app(server, conn):
    rid = new_rid()
    err = http_failure(http_invoke(conn, BASE + "/x", method="POST", body=b"in", rid=rid,
                                   handler="web.raising", base_path=BASE),
                       "ValueError", "wsgi broke")
    assert err["stackTrace"][-1][2:] == ["in _helper", 'raise ValueError("wsgi broke")']
    assert err["stackTrace"][-2][2] == "in raising"
    assert ("FC Invoke End RequestId: %s, Error: Unhandled function error\n" % rid
            in server.stdout())
    assert "ValueError: wsgi broke" in server.stderr()
    http_failure(http_invoke(conn, "/", handler="web.raising_in_iterable"),
                 "RuntimeError", "mid-body")
    http_failure(http_invoke(conn, "/", handler="web.error_after_body"),
                 "KeyError", "'after the body started'")


@pytest.mark.parametrize("handler,message", [
    ("web.no_start", "the app returned a body before calling start_response"),
    ("web.never_starts", "the app returned without calling start_response"),
    ("web.bad_status", "invalid status 'OK'"),
    ("web.non_bytes_item", "response body items must be bytes, not int"),
    ("web.header_injection", "invalid value for response header 'X-A'"),
    ("web.start_twice", "start_response called twice without exc_info"),
])
def test_http_wsgi_misuse(conn, handler, message):
    http_failure(http_invoke(conn, "/", handler=handler), "WSGIProtocolError", message)
    # The instance keeps serving afterwards.
    assert call(conn, body=b"after", handler="index.echo")[2] == b"after"


@pytest.mark.parametrize("handler,error_type", [
    ("web.nope", "HandlerNotFound"),
    ("syntax_err.handler", "UserCodeSyntaxError"),
    ("nodot", "InvalidHandleName"),
])
def test_http_load_errors(conn, handler, error_type):
    http_failure(http_invoke(conn, "/", handler=handler), error_type)


def test_http_mini_framework(conn):
    status, _, headers, data = http_ok(http_invoke(
        conn, BASE + "/users/%E5%BC%A0%E4%B8%89?f=a&f=b", handler="web.mini_framework",
        base_path=BASE))
    assert status == 200
    assert json.loads(data) == {"user": "\u5f20\u4e09", "fields": ["a", "b"]}
    status, _, headers, data = http_ok(http_invoke(
        conn, BASE + "/login", method="POST", body=b"user=ann", handler="web.mini_framework",
        base_path=BASE, headers=[("Content-Type", "application/x-www-form-urlencoded")]))
    assert (status, data) == (302, b"")
    assert header_values(headers, "location") == ["/home"]
    assert header_values(headers, "set-cookie") == ["session=ann", "theme=dark"]
    status, _, _, data = http_ok(http_invoke(conn, BASE + "/nothing", method="DELETE",
                                             handler="web.mini_framework", base_path=BASE))
    assert (status, data) == (404, b"no route for DELETE /nothing")


def test_http_flask_app(server, conn):
    if subprocess.run([PYTHON, "-c", "import flask"], capture_output=True).returncode != 0:
        pytest.skip("flask is not installed for %s (tests/sdk/requirements.txt has it)" % PYTHON)
    rid = new_rid()
    status, _, headers, data = http_ok(http_invoke(
        conn, BASE + "/users/%E5%BC%A0%E4%B8%89?q=1&q=2", handler="flask_app.handler", rid=rid,
        base_path=BASE, client_ip="198.51.100.9", headers=[("Host", "api.example.test")]))
    assert status == 200
    assert json.loads(data) == {"name": "\u5f20\u4e09", "q": ["1", "2"], "ip": "198.51.100.9",
                                "form": {}, "data": "", "host": "api.example.test", "rid": rid}
    status, _, _, data = http_ok(http_invoke(
        conn, BASE + "/users/bob", method="POST", body=b"x=1&y=%C3%A9",
        handler="flask_app.handler", base_path=BASE,
        headers=[("Content-Type", "application/x-www-form-urlencoded")]))
    r = json.loads(data)
    assert (status, r["form"]) == (200, {"x": "1", "y": "\u00e9"})
    status, _, headers, data = http_ok(http_invoke(conn, "/cookie", handler="flask_app.handler"))
    assert (status, data) == (201, b"\x00\xff")
    assert header_values(headers, "set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    # Flask answers its own errors (a 500 page, the traceback on wsgi.errors): for the runtime
    # that is a response like any other.
    status, _, _, data = http_ok(http_invoke(conn, "/boom", handler="flask_app.handler"))
    assert status == 500
    assert "RuntimeError: flask boom" in server.stderr()
    assert http_ok(http_invoke(conn, "/nope", handler="flask_app.handler"))[0] == 404


def test_http_and_events_share_one_process(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    assert call(c, body=b"event-1", handler="index.echo")[2] == b"event-1"
    assert http_ok(http_invoke(c, "/", handler="web.generator"))[3] == b"gen-erated"
    assert call(c, body=b"event-2", handler="index.echo")[2] == b"event-2"
    assert call(c, body=b"event-3", path="/invoke", handler="index.echo",
                headers={"x-fc-control-path": "/invoke"})[2] == b"event-3"
    c.close()


def test_http_requests_interleave(server):
    """Two HTTP requests inside the app at once (each waits for the other)."""
    ca, cb = server.connection(), server.connection()
    rid_a, rid_b = new_rid(), new_rid()
    result = {}

    def run_a():
        result["a"] = http_invoke(ca, "/a", handler="web.slow_a", rid=rid_a)

    t = threading.Thread(target=run_a)
    t.start()
    b = http_ok(http_invoke(cb, "/b", handler="web.slow_b", rid=rid_b))
    t.join(TIMEOUT)
    assert b[3] == ("b:" + rid_b).encode()
    assert http_ok(result["a"])[3] == ("a:" + rid_a).encode()
    ca.close()
    cb.close()


# ---------------------------------------------------------------------------
# Connection handling, signals, timings
# ---------------------------------------------------------------------------

def test_keepalive_100_requests(server):
    c = server.connection()
    c.connect()
    sock = c.sock
    local = sock.getsockname()
    for i in range(100):
        body = ("req %d" % i).encode()
        status, headers, data = call(c, body=body, handler="index.echo")
        assert (status, data) == (200, body)
        assert headers.get("connection", "").lower() != "close"
        assert c.sock is sock and sock.getsockname() == local
    c.close()


def _raw_request(body=b"", handler="index.echo", rid="raw", extra=b"", eol=b"\r\n"):
    head = [b"POST /invoke HTTP/1.1", b"host: x", b"x-fc-request-id: " + rid.encode(),
            b"x-fc-function-handler: " + handler.encode(),
            b"content-length: " + str(len(body)).encode()]
    return eol.join(head) + eol + extra + eol + body


def _read_responses(sock, n):
    """`n` responses from `sock`: a list of (status, headers dict, body)."""
    buf = b""
    out = []
    while len(out) < n:
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            lines = buf[:i].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            if len(buf) >= i + 4 + length:
                out.append((int(lines[0].split()[1]), headers, buf[i + 4:i + 4 + length]))
                buf = buf[i + 4 + length:]
                continue
        data = sock.recv(1 << 20)
        assert data, "connection closed after %d responses" % len(out)
        buf += data
    return out


def test_pipelined_requests_in_one_write(server):
    """Requests sent back to back in one segment are answered in order."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    bodies = [("pipelined %d" % i).encode() * (i + 1) for i in range(20)]
    sock.sendall(b"\r\n".join([b""] + [_raw_request(b, rid="p%d" % i)
                                       for i, b in enumerate(bodies)]))
    replies = _read_responses(sock, len(bodies))
    assert [r[2] for r in replies] == bodies
    assert all(r[0] == 200 and r[1]["x-fc-status"] == "200" for r in replies)
    sock.close()


def test_request_split_into_single_bytes(server):
    """A head and body that arrive a byte at a time (every split point) still parse."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw = _raw_request(b"trickled body") + _raw_request(b"second")
    for i in range(len(raw)):
        sock.sendall(raw[i:i + 1])
    replies = _read_responses(sock, 2)
    assert [r[2] for r in replies] == [b"trickled body", b"second"]
    sock.close()


def test_bare_lf_line_ends(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(_raw_request(b"lf only", eol=b"\n") + _raw_request(b"crlf"))
    replies = _read_responses(sock, 2)
    assert [r[2] for r in replies] == [b"lf only", b"crlf"]
    sock.close()


def test_large_body_followed_by_pipelined_request(server):
    """A body bigger than one receive, with the next request in the same stream: the
    first body is exact and the second request is not swallowed by it."""
    big = os.urandom(3 * 1024 * 1024 + 17)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sender = threading.Thread(
        target=sock.sendall, args=(_raw_request(big) + _raw_request(b"after"),))
    sender.start()
    replies = _read_responses(sock, 2)
    sender.join(TIMEOUT)
    assert replies[0][2] == big
    assert replies[1][2] == b"after"
    sock.close()


def test_oversized_head_is_refused(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    line = b"x-filler: " + b"a" * 1000 + b"\r\n"
    try:
        sock.sendall(b"POST /invoke HTTP/1.1\r\n" + line * 1100)
    except OSError:
        pass  # the runtime may answer and close before taking it all
    status = _read_responses(sock, 1)[0][0]
    assert status == 431
    sock.close()


def test_chunked_body_in_many_segments(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (b"POST /invoke HTTP/1.1\r\nhost: x\r\nx-fc-request-id: ch\r\n"
            b"x-fc-function-handler: index.echo\r\ntransfer-encoding: chunked\r\n\r\n")
    parts = [b"5;ext=1\r\nhello\r\n", b"6\r\n", b" world", b"\r\n", b"0\r\n", b"x-t: 1\r\n\r\n"]
    sock.sendall(head)
    for p in parts:
        sock.sendall(p)
        time.sleep(0.01)
    sock.sendall(_raw_request(b"next"))
    replies = _read_responses(sock, 2)
    assert [r[2] for r in replies] == [b"hello world", b"next"]
    sock.close()


def test_connection_close_is_honoured(server):
    c = server.connection()
    status, headers, _ = call(c, handler="index.ret_none", headers={"connection": "close"})
    assert status == 200
    assert headers.get("connection", "").lower() == "close"
    c.close()


def test_startup_prints_nothing(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    assert call(c, path="/pre-stop", method="GET")[0] == 200  # a no-op round trip
    assert srv.stdout() == ""
    assert srv.stderr() == ""
    c.close()


def test_sigterm_exits_143(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    assert call(c, body=b"x", handler="index.echo")[2] == b"x"
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(TIMEOUT) == 143
    assert "SIGTERM" in srv.stderr()
    c.close()


def _bare_listener_startup(port):
    """Time until a bare `python -c` that only binds+listens accepts a connection."""
    code = ("import socket,time;s=socket.socket();s.bind(('0.0.0.0',%d));s.listen(8);"
            "time.sleep(120)" % port)
    return time_to_accept([PYTHON, "-u", "-X", "utf8", "-c", code], port)


def test_measure_latency_and_startup(fresh_server, server):
    """Prints numbers; asserts only correctness."""
    c = server.connection()
    call(c, handler="index.noop")  # warm the module cache
    n = 1000
    t0 = time.perf_counter()
    for _ in range(n):
        status, _, body = call(c, handler="index.noop")
        assert (status, body) == (200, b"")
    mean_us = (time.perf_counter() - t0) / n * 1e6
    c.close()
    raw_us = raw_latency(server.port, n, 'index.noop') * 1e6

    def python_pass():
        t = time.perf_counter()
        subprocess.run([PYTHON, "-u", "-X", "utf8", "-c", "pass"], check=True)
        return time.perf_counter() - t

    base = sorted(python_pass() for _ in range(5))
    bare = sorted(_bare_listener_startup(free_port()) for _ in range(5))
    connects, firsts = [], []
    for _ in range(5):
        srv = fresh_server()
        connects.append(srv.t_connect)
        fc = srv.connection()
        assert call(fc, handler="index.noop")[0] == 200
        firsts.append(time.perf_counter() - srv.t_start)
        fc.close()
        srv.stop()
    connects.sort()
    firsts.sort()
    print("\n[fcd python bootstrap] %s" % PYTHON)
    print("  no-op invoke, one keep-alive connection, %d calls: mean %.1f us (http.client), "
          "%.1f us (raw socket client)" % (n, mean_us, raw_us))
    print("  `python -c pass` (incl. interpreter teardown): min %.1f ms, median %.1f ms"
          % (base[0] * 1e3, base[2] * 1e3))
    print("  bare `python -c` bind+listen, to first accepted connection: "
          "min %.1f ms, median %.1f ms" % (bare[0] * 1e3, bare[2] * 1e3))
    print("  bootstrap, to first accepted connection: min %.1f ms, median %.1f ms"
          % (connects[0] * 1e3, connects[2] * 1e3))
    print("  bootstrap, to first invoke response (incl. importing index.py): "
          "min %.1f ms, median %.1f ms" % (firsts[0] * 1e3, firsts[2] * 1e3))
