# fcd Python runtime bootstrap.
#
# fcd starts one of these per function instance as
#     python3 -u -X utf8 bootstrap.py
# with cwd = the function's code directory.  It serves the custom-runtime
# (CAPort) HTTP contract on 0.0.0.0:$FC_SERVER_PORT so that fcd talks to the
# built-in Python runtimes exactly as it talks to a custom runtime:
#
#   POST /invoke       run the handler as handler(event: bytes, context)
#   POST /initialize   run the initializer once (successfully) per process
#   GET|POST /pre-stop, /pre-freeze   run the lifecycle hooks as fn(context)
#   any method and path with "x-fc-control-path: /http-invoke": an HTTP-trigger
#       request, run as the WSGI app handler(environ, start_response)
#
# Success: 200 + "x-fc-status: 200", body = result; for an HTTP request the
#          app's status, headers and body + "x-fc-status: 200".
# Failure: 404 + "x-fc-status: 404" + "x-fc-error-type: UnhandledInvocationError"
#          + JSON {"errorMessage", "errorType", "stackTrace"}.
#
# Standard library only; must run on Python 3.9+.  Startup is kept cheap: the
# HTTP layer is a small hand-written HTTP/1.1 server on a raw socket (one
# daemon thread per connection) instead of http.server, whose imports (email,
# http.client, mimetypes, ...) alone cost ~20 ms.  Per request it receives
# into one buffer and parses the head from it in one pass (no readline per
# header), answers with one write, and builds the context's nested objects
# only when the handler uses them.

import os
import sys


def _await_assignment():
    """A prepared instance waits here for the function it will run.

    fcd may start the interpreter ahead of time, inside an instance's jail but before it knows
    which function the instance is for, with FCD_ASSIGNMENT_FD naming a pipe.  Everything the
    bootstrap imports is imported first, so that cost is paid before a request waits on it;
    then fcd mounts the function's code at /code and writes one JSON object,
    {"env": {...}, "cwd": "..."}, with the function's environment (FC_* variables and the
    user's), and closes the pipe.  EOF without an assignment means the instance is dropped.
    """
    fd = os.environ.pop("FCD_ASSIGNMENT_FD", None)
    if fd is None:
        return
    import threading, time, json, logging, socket, signal, traceback, binascii  # noqa: E401,F401
    with os.fdopen(int(fd), "rb") as pipe:
        data = pipe.read()
    if not data:
        os._exit(0)
    assignment = json.loads(data.decode("utf-8"))
    os.environ.update(assignment.get("env") or {})
    os.chdir(assignment.get("cwd") or os.environ.get("FC_FUNC_CODE_PATH") or "/code")
    time.tzset()


_await_assignment()

# --------------------------------------------------------------------------
# Configuration captured before the environment is scrubbed.
# --------------------------------------------------------------------------

_env = os.environ
_THIS_FILE = os.path.abspath(__file__)
_CODE_DIR = _env.get("FC_FUNC_CODE_PATH") or os.getcwd()
_PORT_STR = _env.get("FC_SERVER_PORT") or _env.get("FC_CUSTOM_LISTEN_PORT") or "9000"
_DEFAULT_HANDLER = _env.get("FC_FUNCTION_HANDLER", "")
_DEFAULT_INITIALIZER = _env.get("FC_FUNCTION_INITIALIZER", "")
_LOG_LEVEL_NAME = _env.get("FC_SERVER_LOG_LEVEL", "")
_ENV_MEMORY = _env.get("FC_FUNCTION_MEMORY_SIZE", "")
_ENV_FUNCTION_NAME = _env.get("FC_FUNCTION_NAME", "")
_ENV_SERVICE_NAME = _env.get("FC_SERVICE_NAME", "")
_ENV_REGION = _env.get("FC_REGION", "")
_ENV_ACCOUNT_ID = _env.get("FC_ACCOUNT_ID", "")
_ENV_QUALIFIER = _env.get("FC_QUALIFIER", "")
_ENV_VERSION_ID = _env.get("FC_VER_ID", "")

_SAFE_FC_ENV = frozenset((
    "FC_FUNC_CODE_PATH", "FC_FUNCTION_MEMORY_SIZE", "FC_RUNTIME_VERSION",
    "FC_ACCOUNT_ID", "FC_FUNCTION_HANDLER", "FC_FUNCTION_NAME",
    "FC_SERVICE_NAME", "FC_VER_ID", "FC_QUALIFIER", "FC_REGION",
    "FC_INSTANCE_ID", "FC_SNAPSHOT_FLAG", "FC_CUSTOM_LISTEN_PORT",
    "FC_SERVER_PORT",
))


def _scrub_env():
    for key in [k for k in _env if k.startswith("FC_") and k not in _SAFE_FC_ENV]:
        try:
            del _env[key]
        except KeyError:
            pass


def _setup_sys_path():
    here = os.path.dirname(_THIS_FILE)
    code = os.path.abspath(_CODE_DIR)
    # Drop the bootstrap's own directory (python put it at sys.path[0]);
    # the code dir goes first, then the layer dirs, then the rest.
    ver = "python%d.%d" % sys.version_info[:2]
    # Layers are at /opt; an instance outside a jail is told where they are instead.
    opt = _env.get("FCD_LAYERS_DIR") or "/opt"
    layers = [p for p in (opt + "/python", opt + "/python/lib/" + ver + "/site-packages")
              if os.path.isdir(p)]
    skip = set(layers)
    skip.update(("", here, code))
    sys.path[:] = [code] + layers + [p for p in sys.path if p not in skip]


# --------------------------------------------------------------------------
# Output streams and logging.
# --------------------------------------------------------------------------

_OUT = sys.stdout
_ERR = sys.stderr
for _s in (_OUT, _ERR):
    try:
        _s.reconfigure(line_buffering=True)
    except Exception:
        pass

import threading  # noqa: E402
import time  # noqa: E402
import json  # noqa: E402
_LOG_RECORD_LIMIT = 128 * 1024

# Request id of the most recently started request; used by the root logger
# (process-global, as in FC: may be wrong under instance concurrency > 1).
_current_request_id = ""

# `logging` (~4 ms of imports) is loaded only when something uses it: user
# code importing it (directly or through a library), or context.getLogger().
# Whenever it is first imported, the root logger is given FC's format before
# the importing code goes on, so records look the same as if it had been
# configured at start-up.  A prepared instance imports it up front.
_RequestLogger = None


def _setup_logging(logging):
    """FC's root handler and level; the per-request logger class."""
    global _RequestLogger

    class _FCFormatter(logging.Formatter):
        converter = time.gmtime

        def format(self, record):
            if not hasattr(record, "fc_request_id"):
                record.fc_request_id = _current_request_id
            s = logging.Formatter.format(self, record)
            if len(s) > _LOG_RECORD_LIMIT:
                s = s[:_LOG_RECORD_LIMIT]
            return s

    class RequestLogger(logging.Logger):
        """A logger bound to one request id; propagates to the root handlers."""

        def __init__(self, request_id):
            logging.Logger.__init__(self, "fc_request_logger")
            self.parent = logging.root
            self._fc_request_id = request_id

        def makeRecord(self, *args, **kwargs):
            rv = logging.Logger.makeRecord(self, *args, **kwargs)
            rv.fc_request_id = self._fc_request_id
            return rv

    level = logging.INFO
    name = _LOG_LEVEL_NAME.strip()
    if name:
        if name.isdigit():
            level = int(name)
        else:
            lv = logging.getLevelName(name.upper())
            if isinstance(lv, int):
                level = lv
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(_ERR)
    handler.setFormatter(_FCFormatter(
        "%(asctime)s.%(msecs)03dZ %(fc_request_id)s [%(levelname)s] %(message)s",
        "%Y-%m-%dT%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    _RequestLogger = RequestLogger


class _LoggingLoader(object):
    """Loads `logging` with the loader found for it, then configures it."""

    def __init__(self, inner):
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        _setup_logging(module)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _LoggingFinder(object):
    """A sys.meta_path entry that sees the first import of `logging` only."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != "logging":
            return None
        try:
            sys.meta_path.remove(cls)
        except ValueError:
            pass
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _LoggingLoader(spec.loader)
                return spec
        return None


def _init_logging():
    """Configure `logging` now if it is loaded, else when it first is."""
    mod = sys.modules.get("logging")
    if mod is not None:
        _setup_logging(mod)
    else:
        sys.meta_path.insert(0, _LoggingFinder)


def _request_logger(request_id):
    if _RequestLogger is None:
        import logging
        if _RequestLogger is None:  # imported before the finder was installed
            _setup_logging(logging)
    return _RequestLogger(request_id)


def _utc_stamp():
    t = time.time()
    return "%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)),
                         int(t * 1000) % 1000)


def _flush_streams():
    for s in (sys.stdout, sys.stderr, _OUT, _ERR):
        try:
            s.flush()
        except Exception:
            pass


def _marker(text):
    # Flush anything the user wrote first so markers keep their order (the
    # user's replacement streams, if any, and ours).
    so = sys.stdout
    se = sys.stderr
    try:
        if so is not _OUT:
            so.flush()
        if se is not _ERR and se is not so:
            se.flush()
    except Exception:
        pass
    try:
        _ERR.flush()
        _OUT.write(text)
        _OUT.flush()
    except Exception:
        pass


def _log_error_text(request_id, text):
    try:
        _ERR.write("%s %s [ERROR] %s\n" % (_utc_stamp(), request_id, text.rstrip("\n")))
        _ERR.flush()
    except Exception:
        pass


# --------------------------------------------------------------------------
# Context object.
# --------------------------------------------------------------------------

def _int_or(value, default):
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        try:
            return int(float(value))
        except ValueError:
            return default


class Credentials(object):
    __slots__ = ("access_key_id", "access_key_secret", "security_token")

    def __init__(self, access_key_id, access_key_secret, security_token):
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token

    # camelCase aliases (python2.7 compatibility in FC).
    @property
    def accessKeyId(self):
        return self.access_key_id

    @property
    def accessKeySecret(self):
        return self.access_key_secret

    @property
    def securityToken(self):
        return self.security_token

    def to_json(self):
        return {"accessKeyId": self.access_key_id,
                "accessKeySecret": self.access_key_secret,
                "securityToken": self.security_token}


class FunctionMeta(object):
    __slots__ = ("name", "handler", "memory", "timeout", "initializer",
                 "initialization_timeout")

    def __init__(self, name, handler, memory, timeout, initializer,
                 initialization_timeout):
        self.name = name
        self.handler = handler
        self.memory = memory
        self.timeout = timeout
        self.initializer = initializer
        self.initialization_timeout = initialization_timeout

    def to_json(self):
        return {"name": self.name, "handler": self.handler,
                "memory": self.memory, "timeout": self.timeout}


class ServiceMeta(object):
    __slots__ = ("name", "log_project", "log_store", "qualifier", "version_id")

    def __init__(self, name, log_project, log_store, qualifier, version_id):
        self.name = name
        self.log_project = log_project
        self.log_store = log_store
        self.qualifier = qualifier
        self.version_id = version_id

    def to_json(self):
        return {"name": self.name, "logProject": self.log_project,
                "logStore": self.log_store, "qualifier": self.qualifier,
                "versionId": self.version_id}


class Tracing(object):
    __slots__ = ("span_context", "jaeger_endpoint", "span_baggages")

    def __init__(self, span_context, jaeger_endpoint, span_baggages):
        self.span_context = span_context
        self.jaeger_endpoint = jaeger_endpoint
        self.span_baggages = span_baggages

    def to_json(self):
        return {"openTracingSpanContext": self.span_context,
                "openTracingSpanBaggages": self.span_baggages,
                "jaegerEndpoint": self.jaeger_endpoint}


def _decode_baggages(value):
    if not value:
        return {}
    try:
        import binascii
        raw = binascii.a2b_base64(value.strip())
        obj = json.loads(raw.decode("utf-8"))
        return obj if isinstance(obj, dict) else {}
    except Exception:
        return {}


class FCContext(object):
    """The handler's context.  Built for every call, so only the request id,
    region and account are read eagerly; the nested objects (credentials,
    function, service, tracing) and the retry count are built from the
    request's headers on first use."""

    __slots__ = ("request_id", "region", "account_id", "_headers", "_handler",
                 "_credentials", "_function", "_service", "_tracing", "_retry_count",
                 "_logger")

    def __init__(self, headers, handler):
        g = headers.get
        self._headers = headers
        self._handler = handler
        self.request_id = g("x-fc-request-id", "")
        self.region = g("x-fc-region") or _ENV_REGION
        self.account_id = g("x-fc-account-id") or _ENV_ACCOUNT_ID
        self._credentials = None
        self._function = None
        self._service = None
        self._tracing = None
        self._retry_count = None
        self._logger = None

    @property
    def credentials(self):
        c = self._credentials
        if c is None:
            g = self._headers.get
            c = self._credentials = Credentials(g("x-fc-access-key-id", ""),
                                                g("x-fc-access-key-secret", ""),
                                                g("x-fc-security-token", ""))
        return c

    @credentials.setter
    def credentials(self, value):
        self._credentials = value

    @property
    def function(self):
        f = self._function
        if f is None:
            g = self._headers.get
            f = self._function = FunctionMeta(
                g("x-fc-function-name") or _ENV_FUNCTION_NAME,
                self._handler,
                _int_or(g("x-fc-function-memory") or _ENV_MEMORY, None),
                _int_or(g("x-fc-function-timeout"), None),
                g("x-fc-function-initializer") or _DEFAULT_INITIALIZER,
                _int_or(g("x-fc-initialization-timeout"), None))
        return f

    @function.setter
    def function(self, value):
        self._function = value

    @property
    def service(self):
        s = self._service
        if s is None:
            g = self._headers.get
            s = self._service = ServiceMeta(
                g("x-fc-service-name") or _ENV_SERVICE_NAME,
                g("x-fc-service-logproject", ""),
                g("x-fc-service-logstore", ""),
                g("x-fc-qualifier") or _ENV_QUALIFIER,
                g("x-fc-version-id") or _ENV_VERSION_ID)
        return s

    @service.setter
    def service(self, value):
        self._service = value

    @property
    def tracing(self):
        t = self._tracing
        if t is None:
            g = self._headers.get
            t = self._tracing = Tracing(
                g("x-fc-tracing-opentracing-span-context", ""),
                g("x-fc-tracing-jaeger-endpoint", ""),
                _decode_baggages(g("x-fc-tracing-opentracing-span-baggages")))
        return t

    @tracing.setter
    def tracing(self, value):
        self._tracing = value

    @property
    def retry_count(self):
        r = self._retry_count
        if r is None:
            r = self._retry_count = _int_or(self._headers.get("x-fc-retry-count"), 0)
        return r

    @retry_count.setter
    def retry_count(self, value):
        self._retry_count = value

    @property
    def requestId(self):
        return self.request_id

    def getLogger(self):
        lg = self._logger
        if lg is None:
            lg = self._logger = _request_logger(self.request_id)
        return lg

    def to_json(self):
        return {"requestId": self.request_id,
                "credentials": self.credentials.to_json(),
                "function": self.function.to_json(),
                "service": self.service.to_json(),
                "region": self.region,
                "accountId": self.account_id,
                "retryCount": self.retry_count,
                "tracing": self.tracing.to_json()}


# --------------------------------------------------------------------------
# Handler loading and error reporting.
# --------------------------------------------------------------------------

class _LoadError(Exception):
    def __init__(self, error_type, message, exc=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.exc = exc


_handler_cache = {}
_handler_cache_lock = threading.Lock()


_RUNTIME_FILES = frozenset((_THIS_FILE, __file__))


def _is_runtime_frame(filename):
    return filename in _RUNTIME_FILES or filename.startswith("<frozen importlib")


def _user_frames(tb):
    import traceback
    return [fs for fs in traceback.extract_tb(tb) if not _is_runtime_frame(fs.filename)]


def _stack_trace(exc):
    out = []
    for fs in _user_frames(exc.__traceback__):
        out.append(['File "%s"' % fs.filename, "line %s" % fs.lineno,
                    "in %s" % fs.name, fs.line or ""])
    if isinstance(exc, SyntaxError) and exc.filename:
        out.append(['File "%s"' % exc.filename, "line %s" % exc.lineno,
                    "in <module>", (exc.text or "").strip()])
    return out


def _format_traceback(exc):
    import traceback
    try:
        te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
        te.stack = traceback.StackSummary.from_list(_user_frames(exc.__traceback__))
        return "".join(te.format())
    except Exception:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _load_handler(handler):
    fn = _handler_cache.get(handler)
    if fn is not None:
        return fn
    if not handler or "." not in handler:
        raise _LoadError("InvalidHandleName", "Invalid handler '%s'" % handler)
    modpath, _, fname = handler.rpartition(".")
    if not modpath or not fname:
        raise _LoadError("InvalidHandleName", "Invalid handler '%s'" % handler)
    modname = modpath.strip("/").replace("/", ".")
    if not modname or ".." in modname or modname.startswith("."):
        raise _LoadError("InvalidHandleName", "Invalid handler '%s'" % handler)
    with _handler_cache_lock:
        fn = _handler_cache.get(handler)
        if fn is not None:
            return fn
        try:
            __import__(modname)
            module = sys.modules[modname]
        except SyntaxError as e:
            raise _LoadError("UserCodeSyntaxError",
                             "Syntax error in module '%s'" % modpath, e)
        except ImportError as e:
            raise _LoadError("ImportModuleError",
                             "Unable to import module '%s'" % modpath, e)
        except SystemExit:
            raise
        except BaseException as e:  # noqa: B902 - any module init failure
            raise _LoadError("UserCodeError",
                             "Module initialization error: '%s'" % (e,), e)
        try:
            fn = getattr(module, fname)
        except AttributeError:
            raise _LoadError("HandlerNotFound",
                             "Handler '%s' is missing on module '%s'" % (fname, modpath))
        _handler_cache[handler] = fn
        return fn


def _error_body(error_type, message, stack):
    return json.dumps({"errorMessage": message, "errorType": error_type,
                       "stackTrace": stack}, indent=4).encode("utf-8")


def _describe_failure(request_id, exc):
    """Log the failure to stderr; return (errorType, body bytes)."""
    if isinstance(exc, _LoadError):
        inner = exc.exc
        text = "%s: %s" % (exc.error_type, exc.message)
        if inner is not None:
            text += "\n" + _format_traceback(inner)
        _log_error_text(request_id, text)
        stack = _stack_trace(inner) if inner is not None else []
        return _error_body(exc.error_type, exc.message, stack)
    _log_error_text(request_id, _format_traceback(exc))
    try:
        msg = str(exc)
    except Exception:
        msg = "<unprintable %s object>" % type(exc).__name__
    return _error_body(type(exc).__name__, msg, _stack_trace(exc))


def _exit_from_handler(e):
    _flush_streams()
    code = e.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        try:
            _ERR.write("%s\n" % (code,))
        except Exception:
            pass
        code = 1
    _flush_streams()
    os._exit(code & 0xFF)


# --------------------------------------------------------------------------
# Result conversion.
# --------------------------------------------------------------------------

def _json_default(obj):
    dec = sys.modules.get("decimal")
    if dec is not None and isinstance(obj, dec.Decimal):
        return float(obj)
    dt = sys.modules.get("datetime")
    if dt is not None and isinstance(obj, dt.date):  # datetime is a date
        return obj.isoformat()
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):
        return to_json()
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _to_body(result):
    if result is None:
        return b""
    if isinstance(result, bytes):
        return result
    if isinstance(result, str):
        return result.encode("utf-8")
    if isinstance(result, (bytearray, memoryview)):
        return bytes(result)
    return json.dumps(result, indent=4, sort_keys=True,
                      default=_json_default).encode("utf-8")


# --------------------------------------------------------------------------
# Endpoint implementations.  Each returns (status, extra_headers, body).
# --------------------------------------------------------------------------

_OK_HEADERS = (("x-fc-status", "200"),)
_FAIL_HEADERS = (("x-fc-status", "404"),
                 ("x-fc-error-type", "UnhandledInvocationError"),
                 ("content-type", "application/json"))


def _invoke(headers, body):
    global _current_request_id
    rid = headers.get("x-fc-request-id", "")
    _current_request_id = rid
    handler = headers.get("x-fc-function-handler") or _DEFAULT_HANDLER
    _marker("FC Invoke Start RequestId: %s\n" % rid)
    try:
        fn = _load_handler(handler)
        result = fn(body, FCContext(headers, handler))
        payload = _to_body(result)
    except SystemExit as e:
        _marker("FC Invoke End RequestId: %s, Error: Unhandled function error\n" % rid)
        _exit_from_handler(e)
    except BaseException as e:  # noqa: B902 - report every failure
        err = _describe_failure(rid, e)
        _marker("FC Invoke End RequestId: %s, Error: Unhandled function error\n" % rid)
        return 404, _FAIL_HEADERS, err
    _marker("FC Invoke End RequestId: %s\n" % rid)
    return 200, _OK_HEADERS, payload


def _run_hook(label, rid, handler, headers):
    """Run fn(context) between '<label> Start/End' markers."""
    global _current_request_id
    _current_request_id = rid
    _marker("FC %s Start RequestId: %s\n" % (label, rid))
    try:
        fn = _load_handler(handler)
        fn(FCContext(headers, headers.get("x-fc-function-handler") or _DEFAULT_HANDLER))
    except SystemExit as e:
        _marker("FC %s End RequestId: %s, Error: Unhandled function error\n" % (label, rid))
        _exit_from_handler(e)
    except BaseException as e:  # noqa: B902
        err = _describe_failure(rid, e)
        _marker("FC %s End RequestId: %s, Error: Unhandled function error\n" % (label, rid))
        return 404, _FAIL_HEADERS, err
    _marker("FC %s End RequestId: %s\n" % (label, rid))
    return 200, _OK_HEADERS, b""


_initialized = False
_init_lock = threading.Lock()


def _initialize(headers, body):
    global _initialized
    handler = headers.get("x-fc-function-initializer") or _DEFAULT_INITIALIZER
    with _init_lock:
        if _initialized or not handler:
            return 200, _OK_HEADERS, b""
        result = _run_hook("Initialize", headers.get("x-fc-request-id", ""), handler, headers)
        if result[0] == 200:
            _initialized = True
        return result


def _pre_stop(headers, body):
    handler = headers.get("x-fc-instance-lifecycle-pre-stop-handler", "")
    if not handler:
        return 200, _OK_HEADERS, b""
    return _run_hook("PreStop", headers.get("x-fc-request-id", ""), handler, headers)


def _pre_freeze(headers, body):
    handler = headers.get("x-fc-instance-lifecycle-pre-freeze-handler", "")
    if not handler:
        return 200, _OK_HEADERS, b""
    return _run_hook("PreFreeze", headers.get("x-fc-request-id", ""), handler, headers)


# --------------------------------------------------------------------------
# HTTP functions: the WSGI shape (fc-runtime-contract.md 4.1 and 12).
#
# fcd sends an HTTP-trigger request as the client's own request (method,
# request-target, headers, body) marked "x-fc-control-path: /http-invoke",
# with "x-fc-base-path" naming the URL prefix before the function's own path
# when it was routed by a /proxy/ URL.  The app's response is buffered whole
# and answered with its status, its headers (repeated ones as separate lines)
# and "x-fc-status: 200"; a failure is answered like an event failure.
# --------------------------------------------------------------------------

# Request headers that describe the fcd->instance hop, not the client's
# request: never shown to the app as HTTP_*.  (x-fc-* are fcd's and carry the
# role's credentials; content-type/-length become CONTENT_TYPE/_LENGTH.)
_WSGI_SKIP_HEADERS = frozenset(("content-type", "content-length", "connection",
                                "keep-alive", "transfer-encoding"))
# Response headers the app may not set: fcd's own x-fc-* (x-fc-status must be
# ours) and the ones that frame this hop's response.
_HTTP_RESERVED_RESPONSE = frozenset(("content-length", "connection", "keep-alive",
                                     "transfer-encoding"))
# A header name: an RFC 9110 token.
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789"
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class WSGIProtocolError(Exception):
    """The app broke the WSGI protocol (bad status or header, body before
    start_response, a body item that is not bytes)."""


def _unquote_latin1(path):
    # PEP 3333: PATH_INFO holds the decoded path's bytes as latin-1 characters
    # (what wsgiref does), so frameworks that re-encode it as latin-1 and
    # decode UTF-8 (Werkzeug/Flask, Django) see non-ASCII paths correctly.
    if "%" not in path:
        return path
    from urllib.parse import unquote
    return unquote(path, "latin-1")


def _strip_base_path(path, base):
    """The handler's path: the request path without fcd's /proxy/ prefix."""
    if base:
        base = base.rstrip("/")
        if path == base or (path.startswith(base) and path[len(base)] == "/"):
            path = path[len(base):]
    return path or "/"


def _wsgi_environ(method, target, headers, raw_headers, body, context):
    path, _, query = target.partition("?")
    if path.startswith("http://") or path.startswith("https://"):
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    path = _strip_base_path(path, headers.get("x-fc-base-path", ""))
    forwarded = headers.get("x-forwarded-for", "")
    client_ip = forwarded.rsplit(",", 1)[-1].strip() if forwarded else ""
    import io
    # As FC's runtime (and CGI servers): the process environment first, the
    # request's keys over it.
    environ = dict(os.environ)
    environ.update({
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": _unquote_latin1(path),
        "QUERY_STRING": query,
        "CONTENT_TYPE": headers.get("content-type") or "application/octet-stream",
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": client_ip,
        "SERVER_NAME": "FCRUNTIME",
        "SERVER_PORT": "9000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        # Requests run on threads of one process, interleaved when the
        # instance's concurrency is above 1.
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "fc.context": context,
        "fc.request_uri": target,
    })
    joined = {}
    for name, value in raw_headers:
        if name.startswith("x-fc-") or name in _WSGI_SKIP_HEADERS:
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        prev = joined.get(key)
        joined[key] = value if prev is None else prev + "," + value
    environ.update(joined)
    return environ


def _check_status(status):
    if not isinstance(status, str):
        raise WSGIProtocolError("status must be a str, not %s" % type(status).__name__)
    code, _, reason = status.partition(" ")
    if len(code) != 3 or not code.isdigit() or not 200 <= int(code) <= 999:
        raise WSGIProtocolError("invalid status %r" % (status,))
    reason = reason.strip()
    if "\r" in reason or "\n" in reason:
        raise WSGIProtocolError("invalid status %r" % (status,))
    try:
        reason.encode("latin-1")
    except UnicodeEncodeError:
        raise WSGIProtocolError("invalid status %r" % (status,))
    return int(code), reason


def _check_headers(headers):
    try:
        items = list(headers)
    except TypeError:
        raise WSGIProtocolError("response headers must be a list of (name, value) tuples")
    out = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise WSGIProtocolError("response header %r is not a (name, value) tuple" % (item,))
        name, value = item
        if not isinstance(name, str) or not name or not _TOKEN_CHARS.issuperset(name):
            raise WSGIProtocolError("invalid response header name %r" % (name,))
        if not isinstance(value, str):
            raise WSGIProtocolError("response header %r: value must be a str, not %s"
                                    % (name, type(value).__name__))
        # CR/LF would let a header value forge more headers or a body.
        if "\r" in value or "\n" in value or "\0" in value:
            raise WSGIProtocolError("invalid value for response header %r" % (name,))
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise WSGIProtocolError("response header %r: value is not latin-1" % (name,))
        lower = name.lower()
        if lower.startswith("x-fc-") or lower in _HTTP_RESERVED_RESPONSE:
            continue
        out.append((name, value))
    return out


def _body_bytes(item):
    if isinstance(item, bytes):
        return item
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    # FC's runtime encodes str items as UTF-8 instead of failing them.
    if isinstance(item, str):
        return item.encode("utf-8")
    raise WSGIProtocolError("response body items must be bytes, not %s" % type(item).__name__)


def _run_wsgi(app, environ):
    """Call the app; return (status, reason, headers, body)."""
    state = {"status": None, "headers": None, "sent": False}
    chunks = []

    def write(data):
        data = _body_bytes(data)
        if data:
            state["sent"] = True
            chunks.append(data)

    def start_response(status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if state["sent"]:
                    # Too late to replace the response (PEP 3333): fail with
                    # the app's own error.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif state["status"] is not None:
            raise WSGIProtocolError("start_response called twice without exc_info")
        code_reason = _check_status(status)
        state["headers"] = _check_headers(headers)
        state["status"] = code_reason
        return write

    result = app(environ, start_response)
    try:
        for item in result:
            data = _body_bytes(item)
            if data:
                if state["status"] is None:
                    raise WSGIProtocolError("the app returned a body before calling start_response")
                state["sent"] = True
                chunks.append(data)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if state["status"] is None:
        raise WSGIProtocolError("the app returned without calling start_response")
    code, reason = state["status"]
    return code, reason, state["headers"], b"".join(chunks)


def _http_invoke(method, target, headers, raw_headers, body):
    """Returns (status, reason, headers, body)."""
    global _current_request_id
    rid = headers.get("x-fc-request-id", "")
    _current_request_id = rid
    handler = headers.get("x-fc-function-handler") or _DEFAULT_HANDLER
    _marker("FC Invoke Start RequestId: %s\n" % rid)
    try:
        app = _load_handler(handler)
        environ = _wsgi_environ(method, target, headers, raw_headers, body,
                                FCContext(headers, handler))
        status, reason, app_headers, payload = _run_wsgi(app, environ)
    except SystemExit as e:
        _marker("FC Invoke End RequestId: %s, Error: Unhandled function error\n" % rid)
        _exit_from_handler(e)
    except BaseException as e:  # noqa: B902 - report every failure
        err = _describe_failure(rid, e)
        _marker("FC Invoke End RequestId: %s, Error: Unhandled function error\n" % rid)
        return 404, None, _FAIL_HEADERS, err
    _marker("FC Invoke End RequestId: %s\n" % rid)
    app_headers.append(("x-fc-status", "200"))
    return status, reason, app_headers, payload


_ROUTES = {
    ("POST", "/invoke"): _invoke,
    ("POST", "/initialize"): _initialize,
    ("GET", "/pre-stop"): _pre_stop,
    ("POST", "/pre-stop"): _pre_stop,
    ("GET", "/pre-freeze"): _pre_freeze,
    ("POST", "/pre-freeze"): _pre_freeze,
}


def _not_found(method, path):
    body = json.dumps({"errorMessage": "no route for %s %s" % (method, path),
                       "errorType": "NotFound"}).encode("utf-8")
    return 404, (("content-type", "application/json"),), body


# --------------------------------------------------------------------------
# Minimal HTTP/1.1 server: keep-alive, Content-Length always, no idle timeout.
# --------------------------------------------------------------------------

_REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found",
            411: "Length Required", 413: "Payload Too Large",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 505: "HTTP Version Not Supported"}
_MAX_LINE = 65536
_MAX_HEADERS = 256


class _BadRequest(Exception):
    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status


def _send(sock, status, headers, body, close, reason=None, head_request=False):
    """One response.  `reason` is an HTTP function's own reason phrase.  The
    answer to a HEAD request, a 204 and a 304 carry no body bytes (the body's
    length is still announced for HEAD, as for the GET it stands for)."""
    if headers is _OK_HEADERS and not close:
        # The usual answer of /invoke: one format, one write.
        head = _OK_HEAD % len(body)
        if len(body) <= 65536:
            sock.sendall(head + body)
        else:
            sock.sendall(head)
            sock.sendall(body)
        return
    parts = ["HTTP/1.1 %d %s\r\n" % (status, reason or _REASONS.get(status, "Unknown"))]
    for k, v in headers:
        parts.append("%s: %s\r\n" % (k, v))
    if status not in (204, 304):
        parts.append("Content-Length: %d\r\n" % len(body))
    if close:
        parts.append("Connection: close\r\n")
    parts.append("\r\n")
    head = "".join(parts).encode("latin-1")
    if head_request or status in (204, 304):
        sock.sendall(head)
    elif len(body) <= 65536:
        sock.sendall(head + body)
    else:
        sock.sendall(head)
        sock.sendall(body)


_OK_HEAD = b"HTTP/1.1 200 OK\r\nx-fc-status: 200\r\nContent-Length: %d\r\n\r\n"
# Largest request head (request line and headers) accepted.
_MAX_HEAD = 1024 * 1024
_RECV = 65536


class _Reader(object):
    """The bytes of one connection received but not yet consumed: `buf[pos:]`.
    Used by the request loop for everything but its fast path."""

    __slots__ = ("sock", "buf", "pos")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.pos = 0

    def more(self):
        """Receive what is there; False at EOF."""
        data = self.sock.recv(_RECV)
        if not data:
            return False
        if self.pos >= len(self.buf):
            self.buf = data
        else:
            self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def readline(self, limit):
        """One line with its LF; raises _BadRequest past `limit` bytes, EOFError at EOF."""
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                if i + 1 - self.pos > limit:
                    raise _BadRequest(400, "line too long")
                line = self.buf[self.pos:i + 1]
                self.pos = i + 1
                return line
            if len(self.buf) - self.pos > limit:
                raise _BadRequest(400, "line too long")
            if not self.more():
                raise EOFError()

    def read(self, n):
        """Exactly `n` bytes (EOFError if the peer stops first)."""
        have = len(self.buf) - self.pos
        if have >= n:
            data = self.buf[self.pos:self.pos + n]
            self.pos += n
            return data
        # One buffer of the final size, filled in place: no list of chunks,
        # no quadratic joins, one copy into the bytes the handler gets.
        out = bytearray(n)
        view = memoryview(out)
        view[:have] = self.buf[self.pos:]
        self.buf = b""
        self.pos = 0
        got = have
        recv_into = self.sock.recv_into
        while got < n:
            k = recv_into(view[got:], min(n - got, 1 << 20))
            if not k:
                raise EOFError()
            got += k
        view.release()
        return bytes(out)


def _read_chunked(reader):
    chunks = []
    while True:
        line = reader.readline(_MAX_LINE)
        size_str = line.split(b";", 1)[0].strip()
        try:
            size = int(size_str, 16)
        except ValueError:
            raise _BadRequest(400, "bad chunk size")
        if size < 0:
            raise _BadRequest(400, "bad chunk size")
        if size == 0:
            # Trailers, up to the empty line.
            while True:
                t = reader.readline(_MAX_LINE)
                if t in (b"\r\n", b"\n"):
                    break
            return b"".join(chunks)
        chunks.append(reader.read(size))
        reader.readline(_MAX_LINE)  # CRLF after chunk data


def _head_end(buf, start):
    """(end of the head's last line, start of the body), or None: the head ends
    at the first empty line (CRLF or a bare LF)."""
    i = buf.find(b"\r\n\r\n", start)
    j = buf.find(b"\n\n", start)
    if j >= 0 and (i < 0 or j < i):
        return j, j + 2
    if i >= 0:
        return i, i + 4
    return None


def _parse_head(text):
    """(method, target, version, headers, repeated) of a request head (no
    final empty line).  Header names are lower-cased; a repeated header is
    joined with ", " in `headers`, and `repeated` (None unless some header
    came more than once) maps its name to its values, in order."""
    lines = text.split("\n")
    request_line = lines[0]
    if len(request_line) > _MAX_LINE:
        raise _BadRequest(400, "request line too long")
    words = request_line.split()
    if len(words) != 3:
        raise _BadRequest(400, "bad request line")
    method, target, version = words
    if not version.startswith("HTTP/1."):
        raise _BadRequest(505, "unsupported HTTP version")
    if len(lines) > _MAX_HEADERS + 1:
        raise _BadRequest(431, "headers too large")
    if len(text) > _MAX_LINE and any(len(line) > _MAX_LINE for line in lines):
        raise _BadRequest(431, "headers too large")
    headers = {}
    repeated = None
    del lines[0]
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(400, "bad header line")
        name = name.strip().lower()
        value = value.strip()
        if name in headers:
            if repeated is None:
                repeated = {}
            prev = headers[name]
            values = repeated.get(name)
            if values is None:
                values = repeated[name] = [prev]
            values.append(value)
            headers[name] = prev + ", " + value
        else:
            headers[name] = value
    return method, target, version, headers, repeated


def _header_pairs(headers, repeated):
    """The request's headers as (name, value) pairs, a repeated one once per value."""
    if not repeated:
        return list(headers.items())
    out = []
    for name, value in headers.items():
        values = repeated.get(name)
        if values is None:
            out.append((name, value))
        else:
            out.extend((name, v) for v in values)
    return out


def _serve_connection(sock):
    """Requests of one connection, one after the other (pipelined ones too),
    on this connection's own thread.  The bytes received are searched for the
    end of the head; a Content-Length body already received is sliced out, a
    larger one read into a buffer of its size."""
    rd = _Reader(sock)
    try:
        while True:
            buf = rd.buf
            pos = rd.pos
            # Tolerate stray CRLFs between requests.
            while pos < len(buf) and buf[pos] in (13, 10):
                pos += 1
            found = _head_end(buf, pos) if pos < len(buf) else None
            while found is None:
                rd.pos = pos
                if len(buf) - pos > _MAX_HEAD:
                    raise _BadRequest(431, "headers too large")
                nl = buf.find(b"\n", pos)
                if (nl < 0 and len(buf) - pos > _MAX_LINE) or nl - pos > _MAX_LINE:
                    raise _BadRequest(400, "request line too long")
                if not rd.more():
                    return
                buf = rd.buf
                pos = 0
                while pos < len(buf) and buf[pos] in (13, 10):
                    pos += 1
                if pos < len(buf):
                    found = _head_end(buf, pos)
            end, body_start = found
            rd.pos = body_start
            close = False
            try:
                method, target, version, headers, repeated = \
                    _parse_head(buf[pos:end].decode("latin-1"))
                conn_hdr = headers.get("connection")
                if version == "HTTP/1.0":
                    close = conn_hdr is None or "keep-alive" not in conn_hdr.lower()
                else:
                    close = conn_hdr is not None and "close" in conn_hdr.lower()
                expect = headers.get("expect")
                if expect is not None and expect.lower() == "100-continue":
                    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                te = headers.get("transfer-encoding")
                if te:
                    if te.lower().rsplit(",", 1)[-1].strip() != "chunked":
                        raise _BadRequest(501, "unsupported transfer-encoding")
                    body = _read_chunked(rd)
                else:
                    cl = headers.get("content-length")
                    if cl:
                        try:
                            n = int(cl)
                        except ValueError:
                            raise _BadRequest(400, "bad content-length")
                        if n < 0:
                            raise _BadRequest(400, "bad content-length")
                        if n == 0:
                            body = b""
                        elif len(buf) - body_start >= n:
                            body = buf[body_start:body_start + n]
                            rd.pos = body_start + n
                        else:
                            body = rd.read(n)
                    else:
                        body = b""
            except _BadRequest as e:
                msg = json.dumps({"errorMessage": str(e), "errorType": "BadRequest"})
                _send(sock, e.status, (("content-type", "application/json"),),
                      msg.encode("utf-8"), True)
                return
            if headers.get("x-fc-control-path") == "/http-invoke":
                # An HTTP-trigger request: the header decides, whatever the
                # client's method and path (it may well be POST /invoke).
                try:
                    status, reason, rh, rbody = _http_invoke(
                        method, target, headers, _header_pairs(headers, repeated), body)
                except Exception as e:  # bug in the bootstrap itself
                    status, reason, rh, rbody = 500, None, (("content-type", "application/json"),), \
                        json.dumps({"errorMessage": "runtime error: %r" % (e,),
                                    "errorType": "RuntimeError"}).encode("utf-8")
                _send(sock, status, rh, rbody, close, reason, method == "HEAD")
                if close:
                    return
                continue
            path = target.split("?", 1)[0]
            if path.startswith("http://") or path.startswith("https://"):
                path = "/" + path.split("://", 1)[1].partition("/")[2]
            route = _ROUTES.get((method, path))
            try:
                if route is None:
                    status, rh, rbody = _not_found(method, path)
                else:
                    status, rh, rbody = route(headers, body)
            except Exception as e:  # bug in the bootstrap itself
                status, rh = 500, (("content-type", "application/json"),)
                rbody = json.dumps({"errorMessage": "runtime error: %r" % (e,),
                                    "errorType": "RuntimeError"}).encode("utf-8")
            _send(sock, status, rh, rbody, close)
            if close:
                return
    except _BadRequest as e:
        try:
            msg = json.dumps({"errorMessage": str(e), "errorType": "BadRequest"})
            _send(sock, e.status, (("content-type", "application/json"),),
                  msg.encode("utf-8"), True)
        except OSError:
            pass
        return
    except (OSError, EOFError, ValueError):
        return
    finally:
        try:
            sock.close()
        except Exception:
            pass


def _on_sigterm(signum, frame):
    try:
        _flush_streams()
        _ERR.write("%s fcd-python-runtime received SIGTERM, thread stacks:\n" % _utc_stamp())
        _ERR.flush()
        import faulthandler
        faulthandler.dump_traceback(file=_ERR, all_threads=True)
        _flush_streams()
    except Exception:
        pass
    os._exit(143)


def main():
    import socket
    import signal
    try:
        port = int(_PORT_STR)
    except ValueError:
        _ERR.write("fcd python bootstrap: invalid port %r\n" % (_PORT_STR,))
        return 1
    signal.signal(signal.SIGTERM, _on_sigterm)
    _scrub_env()
    _setup_sys_path()
    _init_logging()
    try:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(1024)
    except OSError as e:
        _ERR.write("fcd python bootstrap: cannot listen on 0.0.0.0:%d: %s\n" % (port, e))
        return 1
    IPPROTO_TCP, TCP_NODELAY = socket.IPPROTO_TCP, socket.TCP_NODELAY
    Thread = threading.Thread
    while True:
        try:
            conn, _addr = listener.accept()
        except InterruptedError:
            continue
        except OSError as e:
            # e.g. EMFILE: back off briefly instead of spinning.
            _ERR.write("fcd python bootstrap: accept failed: %s\n" % (e,))
            time.sleep(0.05)
            continue
        try:
            conn.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        except OSError:
            pass
        Thread(target=_serve_connection, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
