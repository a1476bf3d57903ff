"""Tests for fcd's embedded Node.js runtime bootstrap.

The bootstrap (crates/fcd-runtime/src/runtimes/nodejs/bootstrap.js) is started the way fcd
starts it -- ``node bootstrap.js`` with cwd = code dir, stdout and stderr on one pipe -- on a
free loopback port, and driven over HTTP/1.1 keep-alive with http.client.

Run from the repository root:  python3 -m pytest -q tests/runtime/test_nodejs_bootstrap.py
Set FCD_TEST_NODE to run the bootstrap under another node binary (default: node on PATH).
Timings are printed (run with -s to see them), never asserted.
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bootstrap_kit import (call, free_port, header_values, http_invoke, new_rid, raw_latency,
                           time_to_accept)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOOTSTRAP = os.path.join(ROOT, "crates", "fcd-runtime", "src", "runtimes", "nodejs", "bootstrap.js")
NODE = os.environ.get("FCD_TEST_NODE") or shutil.which("node") or "/usr/bin/node"
TIMEOUT = 60  # generous: only guards against hangs, never decides pass/fail

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

INDEX_JS = r'''
'use strict';
const fs = require('fs');
const path = require('path');

let counter = 0;
let initCount = 0;
let initValue = null;
let arrivals = 0;
const waiting = [];

exports.initializer = (context, callback) => {
  initCount += 1;
  initValue = 'initialized:' + context.requestId;
  console.log('initializer ran');
  callback(null, 'ignored');
};

exports.slowInitializer = (context, callback) => {
  initCount += 1;
  initValue = 'slow:' + context.requestId;
  setTimeout(() => callback(null), 200);
};

exports.badInitializer = (context, callback) => {
  throw new Error('init failed');
};

exports.handledBadInitializer = (context, callback) => {
  callback(new Error('init refused'));
};

exports.initState = (event, context, callback) => {
  callback(null, { initCount: initCount, initValue: initValue });
};

exports.echo = (event, context, callback) => {
  if (!Buffer.isBuffer(event)) throw new Error('event is not a Buffer');
  callback(null, event);
};

exports.eventInfo = (event, context, callback) => {
  callback(null, { isBuffer: Buffer.isBuffer(event), length: event.length, hex: event.toString('hex') });
};

exports.retStr = (e, c, cb) => cb(null, 'hello \u4e16\u754c');
exports.retBuffer = (e, c, cb) => cb(null, Buffer.from([0, 255, 114, 97, 119]));
exports.retAllBytes = (e, c, cb) => { const b = Buffer.alloc(256); for (let i = 0; i < 256; i++) b[i] = i; cb(null, b); };
exports.retUint8 = (e, c, cb) => cb(null, new Uint8Array([1, 2, 3]));
exports.retObj = (e, c, cb) => cb(null, { b: 1, a: [1, 2], c: { z: null, y: true }, s: '\u00e9' });
exports.retArray = (e, c, cb) => cb(null, [1, 'two', null]);
exports.retNull = (e, c, cb) => cb(null, null);
exports.retUndefined = (e, c, cb) => cb();
exports.retInt = (e, c, cb) => cb(null, 42);
exports.retFloat = (e, c, cb) => cb(null, 1.5);
exports.retTrue = (e, c, cb) => cb(null, true);
exports.retFalse = (e, c, cb) => cb(null, false);
exports.retZero = (e, c, cb) => cb(null, 0);
exports.retCircular = (e, c, cb) => { const o = {}; o.self = o; cb(null, o); };

exports.cbError = (e, c, cb) => cb(new Error('oops'));
exports.cbTypeError = (e, c, cb) => cb(new TypeError('wrong type'));
exports.cbString = (e, c, cb) => cb('oops');
exports.cbObject = (e, c, cb) => cb({ code: 7 });

function helper() {
  throw new Error('something is wrong');
}
exports.throwError = (e, c, cb) => { helper(); };
exports.throwRange = (e, c, cb) => { throw new RangeError('out of range'); };
exports.throwString = (e, c, cb) => { throw 'plain string'; };

exports.asyncValue = async (event, context) => 'async-value';
exports.asyncObject = async (event, context) => ({ from: 'promise', rid: context.requestId });
exports.asyncUndefined = async (event, context) => undefined;
exports.asyncCallback = async (event, context, callback) => {
  await new Promise((r) => setTimeout(r, 5));
  callback(null, 'via-callback');
};
exports.asyncCallbackFirst = async (event, context, callback) => {
  callback(null, 'first');
  return 'second';
};
exports.asyncReject = async (event, context) => {
  await null;
  throw new RangeError('async range');
};
exports.promiseRejectsNothing = () => Promise.reject();

exports.doubleCallback = (e, c, cb) => { cb(null, 'one'); cb(null, 'two'); cb(new Error('three')); };
exports.callbackThenThrow = (e, c, cb) => { cb(null, 'ok'); throw new Error('late'); };

exports.uncaught = (e, c, cb) => { setTimeout(() => { throw new Error('async boom'); }, 10); };
exports.floatingRejection = (e, c, cb) => { Promise.reject(new Error('floating')); };

exports.ctx = (event, context, callback) => {
  callback(null, {
    json: JSON.parse(JSON.stringify(context)),
    loggerMethods: ['verbose', 'debug', 'info', 'warn', 'error', 'log'].map((m) => typeof context.logger[m]),
    waits: context.waitsForEmptyEventLoopBeforeCallback,
    memoryType: typeof context.function.memory,
    timeoutType: typeof context.function.timeout,
    keys: Object.keys(context).sort(),
  });
};

exports.count = (e, c, cb) => { counter += 1; cb(null, counter); };

exports.log = (event, context, callback) => {
  const msg = event.toString();
  console.log('log', msg, { k: 1 });
  console.info('info %s', msg);
  console.warn('warn ' + msg);
  console.error('error ' + msg);
  console.debug('debug ' + msg);
  context.logger.info('ctx-info ' + msg);
  context.logger.verbose('ctx-verbose ' + msg);
  context.logger.error('ctx-error ' + msg);
  console.log('multi\nline ' + msg);
  process.stdout.write('raw ' + msg + '\n');
  callback(null, 'logged');
};

exports.logLevels = (event, context, callback) => {
  console.setLogLevel('toString'); // not a level: ignored
  console.verbose === undefined && console.log('still-verbose');
  console.setLogLevel('warn');
  console.info('hidden-info');
  console.warn('shown-warn');
  console.setLogLevel('verbose');
  context.logger.setLogLevel('error');
  context.logger.warn('hidden-ctx-warn');
  context.logger.error('shown-ctx-error');
  callback(null, 'ok');
};

// Holds every caller until `n` (the event) are inside the handler at once, then answers each
// after a different delay with what its own context says.
exports.barrier = (event, context, callback) => {
  const n = parseInt(event.toString(), 10);
  arrivals += 1;
  const rid = context.requestId;
  const answer = () => setTimeout(() => {
    context.logger.info('barrier-done');
    callback(null, { rid: rid, ctxRid: context.requestId, fn: context.function.name,
                     key: context.credentials.accessKeyId, arrivals: arrivals });
  }, Math.floor(Math.random() * 30));
  waiting.push(answer);
  if (waiting.length >= n) {
    waiting.splice(0).forEach((f) => f());
  }
};

exports.env = (event, context, callback) => {
  callback(null, {
    fc: Object.keys(process.env).filter((k) => k.startsWith('FC_')).sort(),
    user: process.env.MY_USER_VAR,
    cwd: process.cwd(),
    mainIsBootstrap: require.main !== module,
    assignmentFd: process.env.FCD_ASSIGNMENT_FD || null,
  });
};

exports.exitNow = (e, c, cb) => { console.log('exiting'); process.exit(3); };

exports.preStop = (context, callback) => {
  console.log('pre-stop ran ' + context.requestId);
  callback();
};
exports.preFreezeFail = (context, callback) => { throw new Error('freeze'); };
exports.preFreezeHandled = (context, callback) => callback('not now');

exports.notAFunction = 5;
'''

# The role's credentials as user code sees them: context.credentials for the handler, the
# initializer and the hooks, and the environment. Nothing here prints them: the tests check
# they never reach the output.
CREDS_JS = r'''
const seen = {};
const ENV = ['ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET',
             'ALIBABA_CLOUD_SECURITY_TOKEN'];
const view = (context) => ({ credentials: context.credentials,
                             keys: Object.keys(context.credentials) });

exports.initializer = (context, callback) => { seen.initialize = view(context); callback(null); };
exports.preFreeze = (context, callback) => { seen.preFreeze = view(context); callback(null); };
exports.preStop = (context, callback) => { seen.preStop = view(context); callback(null); };
exports.handler = (event, context, callback) => {
  const env = {};
  for (const k of ENV) env[k] = process.env[k] === undefined ? null : process.env[k];
  callback(null, { invoke: view(context), json: JSON.parse(JSON.stringify(context)).credentials,
                   hooks: seen, env: env });
};
exports.fail = (event, context, callback) => { throw new Error('failed with credentials in the context'); };
exports.failHook = (context, callback) => callback(new Error('hook failed with credentials in the context'));
'''

# HTTP functions for the HTTP-trigger tests: exports.handler = (req, resp, context).
WEB_JS = r'''
'use strict';
const http = require('http');
const stream = require('stream');
const { Writable } = stream;

let arrivals = 0;
const waiting = [];

function view(req, context, streamed) {
  return {
    method: req.method, path: req.path, url: req.url, queries: req.queries,
    headers: req.headers, clientIP: req.clientIP, body: req.body.toString('hex'),
    isBuffer: Buffer.isBuffer(req.body), streamed: streamed.toString('hex'),
    getHeader: [req.getHeader('Content-Type'), req.getHeader('ACCEPT'), req.getHeader('missing')],
    incoming: req instanceof http.IncomingMessage,
    rid: context.requestId, handler: context.function.handler,
    key: context.credentials.accessKeyId,
  };
}

// Reads the body as a stream ('data'/'end'), as raw-body and express adapters do.
exports.report = (req, resp, context) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    resp.setHeader('Content-Type', 'application/json');
    resp.send(JSON.stringify(view(req, context, Buffer.concat(chunks))));
  });
};

// The body through pipe() into a Writable, and through async iteration, in one request.
exports.piped = (req, resp, context) => {
  const got = [];
  req.pipe(new Writable({
    write(chunk, enc, cb) { got.push(chunk); cb(); },
    final(cb) {
      resp.send(Buffer.concat(got));
      cb();
    },
  }));
};

exports.iterated = async (req, resp, context) => {
  const got = [];
  for await (const c of req) got.push(c);
  resp.send(Buffer.concat(got));
};

exports.binary = (req, resp, context) => {
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  resp.setStatusCode(207);
  resp.setHeader('Content-Type', 'application/octet-stream');
  resp.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; HttpOnly']);
  resp.setHeader('X-Mixed-Case', 'Value With Case');
  resp.send(Buffer.concat([all, Buffer.from(req.body).reverse()]));
};

exports.headerOps = (req, resp, context) => {
  resp.setHeader('X-Gone', 'soon');
  const had = resp.hasHeader('X-Gone');
  resp.deleteHeader('X-Gone');
  resp.setHeader('X-List', ['1', '2']);
  const chained = resp.setHeader('X-Chained', 'c') === resp;
  resp.send(JSON.stringify({ had: had, has: resp.hasHeader('X-Gone'), list: resp.getHeader('X-List'),
                             chained: chained }));
};

exports.reserved = (req, resp, context) => {
  resp.setHeader('x-fc-status', '404');
  resp.setHeader('X-Fc-Error-Type', 'Nope');
  resp.setHeader('Content-Length', '999');
  resp.setHeader('Transfer-Encoding', 'chunked');
  resp.setHeader('Connection', 'close');
  resp.setHeader('X-Kept', 'yes');
  resp.send('fine');
};

exports.noContent = (req, resp, context) => {
  resp.setStatusCode(204);
  resp.setHeader('X-Kept', 'yes');
  resp.send('');
};

exports.text = (req, resp, context) => resp.send('caf\u00e9');

exports.streamed = (req, resp, context) => {
  const n = parseInt(req.queries.n || '3', 10);
  let i = 0;
  resp.setHeader('Content-Type', 'text/plain');
  resp.send(new stream.Readable({
    read() {
      if (i === n) { this.push(null); return; }
      const chunk = Buffer.alloc(64 * 1024, 97 + (i % 26));
      i += 1;
      setImmediate(() => this.push(chunk));
    },
  }));
};

exports.streamStrings = (req, resp, context) => {
  resp.send(stream.Readable.from(['str', Buffer.from('-buf')]));
};

exports.streamFails = (req, resp, context) => {
  const s = new stream.Readable({ read() {} });
  resp.send(s);
  s.push('partial');
  setImmediate(() => s.destroy(new Error('stream broke')));
};

exports.sendTwice = (req, resp, context) => {
  resp.send('first');
  let second = null;
  try {
    resp.send('second');
  } catch (e) {
    second = e.message;
  }
  let header = null;
  try {
    resp.setHeader('X-Late', '1');
  } catch (e) {
    header = e.message;
  }
  console.log('sendTwice: ' + second + ' / ' + header);
};

function helper() {
  throw new Error('http boom');
}
exports.throws = (req, resp, context) => { helper(); };
exports.rejects = async (req, resp, context) => {
  await null;
  throw new RangeError('async http');
};
exports.throwsAfterSend = (req, resp, context) => {
  resp.send('sent');
  throw new Error('too late');
};
exports.badStatus = (req, resp, context) => { resp.setStatusCode('200'); };
exports.badHeader = (req, resp, context) => { resp.setHeader('X-A', 'a\r\nX-Injected: 1'); };
exports.badBody = (req, resp, context) => { resp.send({ not: 'a buffer' }); };

// Holds every caller until `n` (the query) are inside the handler at once.
exports.barrier = (req, resp, context) => {
  const n = parseInt(req.queries.n, 10);
  arrivals += 1;
  waiting.push(() => setTimeout(() => {
    resp.send(JSON.stringify({ rid: context.requestId, path: req.path, body: req.body.toString() }));
  }, Math.floor(Math.random() * 20)));
  if (waiting.length >= n) waiting.splice(0).forEach((f) => f());
};

// An express-style adapter: the FC request is replayed against a plain Node HTTP app (here on
// an in-process server), the way FC's framework adapters bridge (req, resp, context) to
// (IncomingMessage, ServerResponse).
let appServer = null;
function app(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    res.statusCode = req.url.startsWith('/users/') ? 200 : 404;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Set-Cookie', ['s=1', 't=2']);
    res.end(JSON.stringify({ url: req.url, method: req.method, body: Buffer.concat(chunks).toString() }));
  });
}
exports.adapter = (req, resp, context) => {
  const go = () => {
    const headers = Object.assign({}, req.headers);
    delete headers.host;
    const qs = req.url.indexOf('?') === -1 ? '' : req.url.slice(req.url.indexOf('?'));
    const up = http.request({ port: appServer.address().port, host: '127.0.0.1', method: req.method,
                              path: req.path + qs, headers: headers }, (r) => {
      const got = [];
      r.on('data', (c) => got.push(c));
      r.on('end', () => {
        resp.setStatusCode(r.statusCode);
        for (const k of Object.keys(r.headers)) {
          if (k !== 'content-length' && k !== 'date' && k !== 'connection' && k !== 'keep-alive') {
            resp.setHeader(k, r.headers[k]);
          }
        }
        resp.send(Buffer.concat(got));
      });
    });
    req.pipe(up);
  };
  if (appServer === null) {
    appServer = http.createServer(app);
    appServer.listen(0, '127.0.0.1', go);
  } else {
    go();
  }
};
'''

FILES = {
    "index.js": INDEX_JS,
    "creds.js": CREDS_JS,
    "web.js": WEB_JS,
    "syntax_err.js": "exports.handler = (e, c, cb) => {{\n  cb(null, 1);\n",
    "init_err.js": "throw new Error('boom at import');\n",
    "dep_err.js": "require('this-module-does-not-exist-fcd');\nexports.handler = (e, c, cb) => cb(null, 1);\n",
    "flaky.js": textwrap.dedent('''
        const fs = require('fs');
        const path = require('path');
        if (!fs.existsSync(path.join(__dirname, 'flaky_ok'))) throw new Error('not yet');
        exports.handler = (e, c, cb) => cb(null, 'flaky ok');
        '''),
    "pkg/sub/mod.js": "exports.handler = (e, c, cb) => cb(null, 'nested ' + require('path').basename(__filename));\n",
    "dotted.name.js": "exports.handler = (e, c, cb) => cb(null, 'dotted');\n",
    "node_modules/local-dep/index.js": "module.exports = 'from node_modules';\n",
    "uses_dep.js": "exports.handler = (e, c, cb) => cb(null, require('local-dep'));\n",
}


def make_code_dir(path):
    for rel, text in FILES.items():
        full = os.path.join(str(path), rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return str(path)


class Server(object):
    """One bootstrap process; stdout and stderr share one pipe, as under fcd.

    With ``prewarmed=True`` it is started the way fcd starts a prewarmed instance: with only
    the function-independent environment and FCD_ASSIGNMENT_FD naming a pipe, on which the
    function's environment and directory arrive (after ``prewarm_s``, so that the bootstrap can
    be blocked on the pipe by then; ``t_start`` is then the moment of the assignment).
    """

    def __init__(self, code_dir, runtime="nodejs20", extra_env=None, prewarmed=False, prewarm_s=0.0):
        self.code_dir = code_dir
        self.runtime = runtime
        self.port = free_port()
        env = self.function_env(code_dir, runtime, self.port, extra_env)
        self._buf = bytearray()
        self._lock = threading.Lock()
        if prewarmed:
            base = {k: v for k, v in os.environ.items() if not k.startswith("FC_")}
            base.update({"HOME": "/tmp", "TZ": "UTC", "FC_FUNC_CODE_PATH": "/code",
                         "NODE_PATH": "/code/node_modules"})
            rfd, wfd = os.pipe()
            base["FCD_ASSIGNMENT_FD"] = str(rfd)
            self.proc = subprocess.Popen(
                [NODE, BOOTSTRAP], cwd="/", env=base, pass_fds=(rfd,),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            os.close(rfd)
            self._start_reader()
            time.sleep(prewarm_s)
            self.t_start = time.perf_counter()
            payload = json.dumps({"program": NODE, "args": [BOOTSTRAP], "env": env, "cwd": code_dir})
            os.write(wfd, payload.encode())
            os.close(wfd)
        else:
            self.t_start = time.perf_counter()
            self.proc = subprocess.Popen(
                [NODE, BOOTSTRAP], cwd=code_dir, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self._start_reader()
        self.t_connect = self.wait_ready()

    @staticmethod
    def function_env(code_dir, runtime, port, extra_env):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FC_")}
        env.update({
            "FC_FUNC_CODE_PATH": code_dir,
            "FC_SERVER_PORT": str(port),
            "FC_CUSTOM_LISTEN_PORT": str(port),
            "FC_FUNCTION_HANDLER": "index.echo",
            "FC_FUNCTION_MEMORY_SIZE": "128",
            "FC_FUNCTION_NAME": "fn",
            "FC_SERVICE_NAME": "svc",
            "FC_REGION": "cn-hangzhou",
            "FC_ACCOUNT_ID": "1234",
            "FC_INSTANCE_ID": "inst-1",
            "FC_QUALIFIER": "LATEST",
            "FC_VER_ID": "LATEST",
            "FC_RUNTIME_VERSION": runtime,
            "FC_FUNCTION_INITIALIZER": "index.initializer",
            "FC_SECRET_INTERNAL": "must-not-leak",
            "MY_USER_VAR": "user-value",
            "NODE_PATH": os.path.join(code_dir, "node_modules"),
            "HOME": "/tmp",
        })
        env.update(extra_env or {})
        return env

    def _start_reader(self):
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._buf.extend(data)

    def wait_ready(self):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("bootstrap exited with %s: %s"
                                     % (self.proc.returncode, self.output()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
                return time.perf_counter() - self.t_start
            except OSError:
                time.sleep(0.001)
        raise AssertionError("bootstrap did not listen in time: " + self.output())

    def connection(self, timeout=TIMEOUT):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def output(self):
        with self._lock:
            return bytes(self._buf).decode("utf-8", "replace")

    def wait_output(self, text, timeout=10):
        """The output once it contains `text` (the pipe is read by a thread)."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.output()
            if text in out:
                return out
            if time.monotonic() > deadline:
                raise AssertionError("%r never appeared in the output:\n%s" % (text, out))
            time.sleep(0.005)

    def request_log(self, rid, label="Invoke"):
        """The lines between this request's Start and End markers, both included."""
        out = self.wait_output("FC %s End RequestId: %s" % (label, rid))
        start = out.index("FC %s Start RequestId: %s\n" % (label, rid))
        end = out.index("FC %s End RequestId: %s" % (label, rid))
        end = out.index("\n", end) + 1
        return out[start:end]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        self.proc.stdout.close()


def ok(result):
    status, headers, body = result
    assert status == 200, body
    assert headers["x-fc-status"] == "200"
    assert "x-fc-error-type" not in headers
    return body


def assert_failure(result, kind, error_type, message=None):
    """A failed call: 404 + x-fc-status 404 + X-Fc-Error-Type <kind>InvocationError + JSON."""
    status, headers, body = result
    assert status == 404, body
    assert headers["x-fc-status"] == "404"
    assert headers["x-fc-error-type"] == kind + "InvocationError", (headers, body)
    assert headers["content-type"] == "application/json"
    err = json.loads(body)
    assert err["errorType"] == error_type, err
    if message is not None:
        assert err["errorMessage"] == message, err
    if "stackTrace" in err:
        assert isinstance(err["stackTrace"], list)
        for line in err["stackTrace"]:
            assert isinstance(line, str), line
            assert "bootstrap.js" not in line, err
    return err


def unhandled_type(runtime, name):
    """FC 2.0 (nodejs12-16) prefixes a thrown error's name; FC 3.0 Node 18+ does not."""
    return name if runtime in ("nodejs18", "nodejs20") else "FunctionUnhandledError: " + name


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def code_dir(tmp_path_factory):
    return make_code_dir(tmp_path_factory.mktemp("code"))


@pytest.fixture(scope="module")
def servers(code_dir):
    """One long-lived server per runtime name, started on first use."""
    started = {}

    def get(runtime):
        if runtime not in started:
            started[runtime] = Server(code_dir, runtime)
        return started[runtime]
    yield get
    for s in started.values():
        s.stop()


@pytest.fixture(scope="module")
def server(servers):
    return servers("nodejs20")


@pytest.fixture(scope="module")
def conn(server):
    c = server.connection()
    yield c
    c.close()


@pytest.fixture(params=["nodejs16", "nodejs20"])
def rt_server(request, servers):
    return servers(request.param)


@pytest.fixture()
def fresh_server(code_dir):
    started = []

    def start(**kw):
        s = Server(code_dir, **kw)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


# ---------------------------------------------------------------------------
# Events and results
# ---------------------------------------------------------------------------

def test_event_is_a_buffer_with_every_byte(conn):
    event = bytes(range(256)) * 4
    info = json.loads(ok(call(conn, body=event, handler="index.eventInfo")))
    assert info["isBuffer"] is True
    assert info["length"] == 1024
    assert bytes.fromhex(info["hex"]) == event


def test_binary_event_round_trips(conn):
    for event in (bytes(range(256)), b"\xff\xfe\x00\x80 not utf-8 \xc3\x28", b""):
        assert ok(call(conn, body=event, handler="index.echo")) == event


def test_default_handler_from_env(conn):
    # No x-fc-function-handler header: FC_FUNCTION_HANDLER (index.echo) is used.
    assert ok(call(conn, body=b"dflt")) == b"dflt"


def test_large_body_5mb(conn):
    event = os.urandom(5 * 1024 * 1024)
    body = ok(call(conn, body=event, handler="index.echo"))
    assert len(body) == len(event) and body == event


def test_chunked_request_body(conn):
    chunks = [b"abc", b"defg" * 1000, bytes(range(256))]
    body = ok(call(conn, body=iter(chunks), handler="index.echo", encode_chunked=True))
    assert body == b"".join(chunks)


@pytest.mark.parametrize("handler,expected", [
    ("index.retStr", "hello \u4e16\u754c".encode("utf-8")),
    ("index.retBuffer", b"\x00\xffraw"),
    ("index.retAllBytes", bytes(range(256))),
    ("index.retUint8", b"\x01\x02\x03"),
    # Objects are compact JSON.stringify, in insertion order (not Python's pretty/sorted form).
    ("index.retObj", '{"b":1,"a":[1,2],"c":{"z":null,"y":true},"s":"\u00e9"}'.encode("utf-8")),
    ("index.retArray", b'[1,"two",null]'),
    ("index.retNull", b""),
    ("index.retUndefined", b""),
    ("index.retInt", b"42"),
    ("index.retFloat", b"1.5"),
    ("index.retTrue", b"true"),
    ("index.retFalse", b"false"),
    ("index.retZero", b"0"),
])
def test_result_serialisation(conn, handler, expected):
    status, headers, body = call(conn, handler=handler)
    assert ok((status, headers, body)) == expected
    assert headers["content-length"] == str(len(expected))


def test_unserialisable_result_is_unhandled(conn):
    err = assert_failure(call(conn, handler="index.retCircular"), "Unhandled", "TypeError")
    assert "circular" in err["errorMessage"].lower()


def test_nested_and_dotted_module_paths(conn):
    assert ok(call(conn, handler="pkg/sub/mod.handler")) == b"nested mod.js"
    assert ok(call(conn, handler="dotted.name.handler")) == b"dotted"


def test_node_path_dependency(conn):
    assert ok(call(conn, handler="uses_dep.handler")) == b"from node_modules"


def test_warm_state_persists(conn):
    first = int(ok(call(conn, handler="index.count")))
    assert int(ok(call(conn, handler="index.count"))) == first + 1
    assert int(ok(call(conn, handler="index.count"))) == first + 2


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

def test_callback_error_is_handled(rt_server):
    c = rt_server.connection()
    rid = new_rid()
    err = assert_failure(call(c, handler="index.cbError", rid=rid), "Handled", "Error", "oops")
    trace = err["stackTrace"]
    assert trace[0] == "Error: oops"
    assert re.search(r"^    at .*index\.js:\d+:\d+\)?$", trace[1]), trace
    log = rt_server.request_log(rid)
    assert log.endswith("FC Invoke End RequestId: %s, Error: Handled function error\n" % rid), log
    assert re.search(r"^%s %s \[error\] Error: oops" % (TS, re.escape(rid)), log, re.M), log
    # Errors keep their own name (no prefix) when handled.
    assert_failure(call(c, handler="index.cbTypeError"), "Handled", "TypeError", "wrong type")
    c.close()


def test_callback_string_error(rt_server):
    c = rt_server.connection()
    status, headers, body = call(c, handler="index.cbString")
    assert_failure((status, headers, body), "Handled", "FunctionHandledError", "oops")
    assert json.loads(body) == {"errorMessage": "oops", "errorType": "FunctionHandledError"}
    err = assert_failure(call(c, handler="index.cbObject"), "Handled", "FunctionHandledError")
    assert json.loads(err["errorMessage"]) == {"code": 7}
    c.close()


def test_thrown_error_is_unhandled(rt_server):
    c = rt_server.connection()
    rid = new_rid()
    err = assert_failure(call(c, handler="index.throwError", rid=rid), "Unhandled",
                         unhandled_type(rt_server.runtime, "Error"), "something is wrong")
    trace = err["stackTrace"]
    assert trace[0] == "Error: something is wrong"
    assert "at helper (" in trace[1] and "index.js" in trace[1], trace
    assert "exports.throwError" in trace[2], trace
    log = rt_server.request_log(rid)
    assert log.endswith("FC Invoke End RequestId: %s, Error: Unhandled function error\n" % rid)
    # The \r-joined stack is one [error] record.
    assert re.search(r"^%s %s \[error\] Error: something is wrong\r    at helper"
                     % (TS, re.escape(rid)), log, re.M), log
    assert_failure(call(c, handler="index.throwRange"), "Unhandled",
                   unhandled_type(rt_server.runtime, "RangeError"), "out of range")
    assert_failure(call(c, handler="index.throwString"), "Unhandled",
                   "FunctionUnhandledError", "plain string")
    # The instance keeps serving afterwards.
    assert ok(call(c, body=b"after", handler="index.echo")) == b"after"
    c.close()


def test_rejected_promise_is_unhandled(rt_server):
    c = rt_server.connection()
    assert_failure(call(c, handler="index.asyncReject"), "Unhandled",
                   unhandled_type(rt_server.runtime, "RangeError"), "async range")
    assert_failure(call(c, handler="index.promiseRejectsNothing"), "Unhandled",
                   unhandled_type(rt_server.runtime, "Error"), "Promise rejected with undefined")
    c.close()


def test_only_the_first_outcome_counts(rt_server):
    c = rt_server.connection()
    assert ok(call(c, handler="index.doubleCallback")) == b"one"
    rid = new_rid()
    assert ok(call(c, handler="index.callbackThenThrow", rid=rid)) == b"ok"
    # The late throw is logged, not reported.
    rt_server.wait_output("[error] Error: late")
    assert ok(call(c, body=b"still", handler="index.echo")) == b"still"
    c.close()


def test_uncaught_exception_fails_the_request(rt_server):
    c = rt_server.connection()
    rid = new_rid()
    assert_failure(call(c, handler="index.uncaught", rid=rid), "Unhandled",
                   unhandled_type(rt_server.runtime, "Error"), "async boom")
    assert "Error: Unhandled function error" in rt_server.request_log(rid)
    assert_failure(call(c, handler="index.floatingRejection"), "Unhandled",
                   unhandled_type(rt_server.runtime, "Error"), "floating")
    # The process survived both.
    assert rt_server.proc.poll() is None
    assert ok(call(c, body=b"alive", handler="index.echo")) == b"alive"
    c.close()


@pytest.mark.parametrize("handler,error_type,message", [
    ("nodot", "InvalidHandlerName", "Invalid handler 'nodot'"),
    ("index.", "InvalidHandlerName", "Invalid handler 'index.'"),
    (".handler", "InvalidHandlerName", "Invalid handler '.handler'"),
    ("../escape.handler", "InvalidHandlerName", "Invalid handler '../escape.handler'"),
    ("no_such_module.handler", "ImportModuleError", None),
    ("index.nope", "HandlerNotFound", "Handler 'nope' is missing on module 'index'"),
    ("index.notAFunction", "HandlerNotFound", "Handler 'notAFunction' is missing on module 'index'"),
    ("index.constructor", "HandlerNotFound", "Handler 'constructor' is missing on module 'index'"),
    ("index.toString", "HandlerNotFound", "Handler 'toString' is missing on module 'index'"),
])
def test_handler_load_errors(conn, code_dir, handler, error_type, message):
    err = assert_failure(call(conn, handler=handler), "Unhandled", error_type, message)
    if error_type == "ImportModuleError":
        missing = os.path.join(os.path.realpath(code_dir), "no_such_module.js")
        assert err["errorMessage"] == "Module '%s' is missing." % missing


def test_module_evaluation_errors(rt_server):
    c = rt_server.connection()
    rt = rt_server.runtime
    err = assert_failure(call(c, handler="syntax_err.handler"), "Unhandled",
                         unhandled_type(rt, "SyntaxError"))
    assert any("syntax_err.js" in line for line in err["stackTrace"]), err
    assert_failure(call(c, handler="init_err.handler"), "Unhandled",
                   unhandled_type(rt, "Error"), "boom at import")
    err = assert_failure(call(c, handler="dep_err.handler"), "Unhandled", unhandled_type(rt, "Error"))
    assert "this-module-does-not-exist-fcd" in err["errorMessage"]
    c.close()


def test_failed_module_load_is_retried(fresh_server, code_dir):
    srv = fresh_server()
    c = srv.connection()
    assert_failure(call(c, handler="flaky.handler"), "Unhandled",
                   "Error", "not yet")
    open(os.path.join(code_dir, "flaky_ok"), "w").close()
    try:
        assert ok(call(c, handler="flaky.handler")) == b"flaky ok"
    finally:
        os.unlink(os.path.join(code_dir, "flaky_ok"))
    c.close()


def test_unknown_path(conn):
    status, headers, body = call(conn, path="/nope", method="GET")
    assert status == 404
    assert "x-fc-status" not in headers
    assert json.loads(body)["errorType"] == "NotFound"


def test_process_exit_in_handler_exits_process(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    rid = new_rid()
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        call(c, handler="index.exitNow", rid=rid)
    assert srv.proc.wait(TIMEOUT) == 3
    log = srv.request_log(rid)
    assert "exiting" in log
    assert log.endswith("FC Invoke End RequestId: %s, Error: Unhandled function error\n" % rid)


# ---------------------------------------------------------------------------
# Async handlers: the runtime name decides what a returned promise means.
# ---------------------------------------------------------------------------

def test_async_handler_value_is_the_result_on_nodejs20(servers):
    c = servers("nodejs20").connection()
    assert ok(call(c, handler="index.asyncValue")) == b"async-value"
    rid = new_rid()
    assert json.loads(ok(call(c, handler="index.asyncObject", rid=rid))) == \
        {"from": "promise", "rid": rid}
    assert ok(call(c, handler="index.asyncUndefined")) == b""
    assert ok(call(c, handler="index.asyncCallback")) == b"via-callback"
    # callback came first: it wins over the returned value.
    assert ok(call(c, handler="index.asyncCallbackFirst")) == b"first"
    c.close()


def test_nodejs18_behaves_like_nodejs20(fresh_server):
    srv = fresh_server(runtime="nodejs18")
    c = srv.connection()
    assert ok(call(c, handler="index.asyncValue")) == b"async-value"
    assert_failure(call(c, handler="index.throwError"), "Unhandled", "Error")
    c.close()


@pytest.mark.parametrize("runtime", ["nodejs12", "nodejs14", "nodejs16"])
def test_async_handler_value_is_ignored_on_fc2_runtimes(fresh_server, runtime):
    """FC 2.0 (nodejs16 and earlier) only attaches .catch to a returned promise: an async handler
    that returns without calling callback does not answer (FC then times it out)."""
    srv = fresh_server(runtime=runtime)
    rid = new_rid()
    hung = srv.connection(timeout=1.5)
    with pytest.raises(socket.timeout):
        call(hung, handler="index.asyncValue", rid=rid)
    hung.close()
    out = srv.output()
    assert "FC Invoke Start RequestId: %s\n" % rid in out
    assert "FC Invoke End RequestId: %s" % rid not in out
    # The instance still serves other requests meanwhile; callback works in async handlers.
    c = srv.connection()
    assert ok(call(c, handler="index.asyncCallback")) == b"via-callback"
    assert ok(call(c, handler="index.asyncCallbackFirst")) == b"first"
    assert_failure(call(c, handler="index.throwError"), "Unhandled", "FunctionUnhandledError: Error")
    c.close()


# ---------------------------------------------------------------------------
# Context
# ---------------------------------------------------------------------------

def test_context_fields(rt_server):
    c = rt_server.connection()
    rid = new_rid()
    baggage = base64.b64encode(json.dumps({"k": "v"}).encode()).decode()
    body = ok(call(c, handler="index.ctx", rid=rid, headers={
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
    }))
    got = json.loads(body)
    assert got["json"] == {
        "requestId": rid,
        "credentials": {"accessKeyId": "STS.id", "accessKeySecret": "secret", "securityToken": "token"},
        "function": {"name": "myfunc", "handler": "index.ctx", "memory": 512, "timeout": 30},
        "service": {"name": "mysvc", "logProject": "proj", "logStore": "store",
                    "qualifier": "prod", "versionId": "3"},
        "region": "cn-shanghai",
        "accountId": "9876",
        "retryCount": 2,
        "tracing": {"openTracingSpanContext": "span-ctx", "openTracingSpanBaggages": {"k": "v"},
                    "jaegerEndpoint": "http://jaeger"},
    }
    assert got["memoryType"] == "number" and got["timeoutType"] == "number"
    assert got["loggerMethods"] == ["function"] * 6
    assert got["waits"] is False
    assert got["keys"] == sorted(["requestId", "credentials", "function", "service", "region",
                                  "accountId", "retryCount", "tracing"])
    c.close()


def test_context_defaults(conn):
    got = json.loads(ok(call(conn, handler="index.ctx", headers={"x-fc-function-memory": ""})))["json"]
    assert got["retryCount"] == 0
    assert got["tracing"] == {"openTracingSpanContext": "", "openTracingSpanBaggages": {},
                              "jaegerEndpoint": ""}
    assert got["function"]["name"] == "fn"        # from FC_FUNCTION_NAME
    assert got["function"]["memory"] == 128       # from FC_FUNCTION_MEMORY_SIZE
    assert got["service"]["name"] == "svc"        # from FC_SERVICE_NAME
    assert got["service"]["qualifier"] == "LATEST"
    assert got["region"] == "cn-hangzhou"         # from FC_REGION
    assert got["accountId"] == "1234"
    assert got["credentials"] == {"accessKeyId": "", "accessKeySecret": "", "securityToken": ""}


def cred_headers(tag):
    return {"x-fc-access-key-id": "STS.%s" % tag,
            "x-fc-access-key-secret": "secret-%s" % tag,
            "x-fc-security-token": "token-%s" % tag}


def cred_view(tag):
    """context.credentials (and its key order) for the headers of cred_headers(tag)."""
    if tag is None:
        creds = {"accessKeyId": "", "accessKeySecret": "", "securityToken": ""}
    else:
        creds = {"accessKeyId": "STS.%s" % tag, "accessKeySecret": "secret-%s" % tag,
                 "securityToken": "token-%s" % tag}
    return {"credentials": creds, "keys": ["accessKeyId", "accessKeySecret", "securityToken"]}


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
        cred_headers("freeze"), **{"x-fc-instance-lifecycle-pre-freeze-handler": "creds.preFreeze"}))
    assert (status, body) == (200, b"")
    status, _, body = call(c, path="/pre-stop", method="GET", headers=dict(
        cred_headers("stop"), **{"x-fc-instance-lifecycle-pre-stop-handler": "creds.preStop"}))
    assert (status, body) == (200, b"")

    got = json.loads(ok(call(c, handler="creds.handler", headers=cred_headers("one"))))
    assert got["invoke"] == cred_view("one")
    assert got["json"] == cred_view("one")["credentials"]
    assert got["hooks"] == {"initialize": cred_view("init"), "preFreeze": cred_view("freeze"),
                            "preStop": cred_view("stop")}
    # The environment's credentials (from the process start, or the assignment) are kept.
    assert got["env"] == CRED_ENV

    # Per call: the next invocation sees its own headers, and none when it has none.
    assert json.loads(ok(call(c, handler="creds.handler",
                              headers=cred_headers("two"))))["invoke"] == cred_view("two")
    assert json.loads(ok(call(c, handler="creds.handler")))["invoke"] == cred_view(None)

    # Failures (whose errors are printed) and hook failures print no credential either.
    rid = new_rid()
    assert call(c, handler="creds.fail", rid=rid, headers=cred_headers("fail"))[0] == 404
    srv.wait_output("FC Invoke End RequestId: %s" % rid)
    rid = new_rid()
    assert call(c, path="/pre-freeze", method="GET", rid=rid, headers=dict(
        cred_headers("hookfail"),
        **{"x-fc-instance-lifecycle-pre-freeze-handler": "creds.failHook"}))[0] == 404
    out = srv.wait_output("FC PreFreeze End RequestId: %s" % rid)
    c.close()
    assert "failed with credentials in the context" in out
    for tag in ("init", "freeze", "stop", "one", "two", "fail", "hookfail", "env"):
        for secret in ("secret-" + tag, "token-" + tag):
            assert secret not in out, secret


def test_environment_is_scrubbed(conn, code_dir):
    e = json.loads(ok(call(conn, handler="index.env")))
    assert "FC_SECRET_INTERNAL" not in e["fc"]
    assert "FC_FUNCTION_INITIALIZER" not in e["fc"]
    for keep in ("FC_SERVER_PORT", "FC_CUSTOM_LISTEN_PORT", "FC_FUNC_CODE_PATH",
                 "FC_FUNCTION_HANDLER", "FC_INSTANCE_ID", "FC_REGION", "FC_RUNTIME_VERSION"):
        assert keep in e["fc"]
    assert e["user"] == "user-value"
    assert os.path.realpath(e["cwd"]) == os.path.realpath(code_dir)
    assert e["mainIsBootstrap"] is True


def test_concurrent_requests_keep_their_own_context(server):
    """5 requests inside the handler at once (a barrier proves it), each answered from its own
    context."""
    n = 5
    rids = [new_rid() for _ in range(n)]

    def one(i):
        c = server.connection()
        try:
            return call(c, body=str(n).encode(), handler="index.barrier", rid=rids[i],
                        headers={"x-fc-access-key-id": "key-%d" % i})
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    for i, r in enumerate(results):
        got = json.loads(ok(r))
        assert got["rid"] == got["ctxRid"] == rids[i]
        assert got["key"] == "key-%d" % i
        assert got["fn"] == "fn"
    out = server.wait_output("FC Invoke End RequestId: %s" % rids[-1])
    for rid in rids:
        server.wait_output("FC Invoke End RequestId: %s\n" % rid)
        # context.logger carries its own request's id even though all ran interleaved.
        assert re.search(r"^%s %s \[info\] barrier-done$" % (TS, re.escape(rid)),
                         server.output(), re.M), out


def test_fifty_concurrent_requests(server):
    n = 50
    rids = [new_rid() for _ in range(n)]

    def one(i):
        c = server.connection()
        try:
            return call(c, body=str(n).encode(), handler="index.barrier", rid=rids[i])
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    assert [json.loads(ok(r))["ctxRid"] for r in results] == rids


# ---------------------------------------------------------------------------
# HTTP functions: exports.handler = (req, resp, context)
# ---------------------------------------------------------------------------

BASE = "/2016-08-15/proxy/svc/fn"


def http_ok(result):
    status, reason, headers, body = result
    assert header_values(headers, "x-fc-status") == ["200"], (status, headers, body)
    assert not header_values(headers, "x-fc-error-type"), body
    return status, reason, headers, body


def http_failure(result, error_type, message=None):
    """An HTTP function's failure is answered exactly like an event's (unhandled)."""
    status, _, headers, body = result
    return assert_failure((status, dict(headers), body), "Unhandled", error_type, message)


def test_http_request_fields(server, conn):
    rid = new_rid()
    body = bytes(range(256)) + b"\r\n\x00tail"
    status, _, headers, data = http_ok(http_invoke(
        conn, BASE + "/users/caf%C3%A9%20x/1?a=1&a=2&b=%20+&c&__proto__=p", method="PUT",
        body=body, handler="web.report", rid=rid, base_path=BASE, client_ip="203.0.113.7",
        headers=[("Host", "api.example.test"), ("Content-Type", "application/x-custom"),
                 ("Content-Type", "text/ignored"), ("Accept", "text/html"),
                 ("Accept", "application/json"), ("Set-Cookie", "c1=1"), ("Set-Cookie", "c2=2"),
                 ("X-Forwarded-For", "198.51.100.1"), ("X-Mixed-Case", "V")],
        fc_headers={"x-fc-access-key-id": "STS.http"}))
    assert status == 200
    assert header_values(headers, "content-type") == ["application/json"]
    r = json.loads(data)
    assert r["method"] == "PUT"
    assert r["path"] == "/users/caf\u00e9 x/1"
    assert r["url"] == BASE + "/users/caf%C3%A9%20x/1?a=1&a=2&b=%20+&c&__proto__=p"
    assert r["queries"] == {"a": ["1", "2"], "b": "  ", "c": "", "__proto__": "p"}
    h = r["headers"]
    assert h["host"] == "api.example.test"
    # The first value of a single-value header wins; set-cookie is an array; others joined.
    assert h["content-type"] == "application/x-custom"
    assert h["accept"] == "text/html, application/json"
    assert h["set-cookie"] == ["c1=1", "c2=2"]
    assert h["x-mixed-case"] == "V"
    assert h["x-forwarded-for"] == "198.51.100.1, 203.0.113.7"
    assert h["content-length"] == str(len(body))
    # fcd's x-fc-* headers (credentials among them) never reach the handler.
    assert not [k for k in h if k.startswith("x-fc-")], h
    assert r["clientIP"] == "203.0.113.7"
    assert r["body"] == body.hex() and r["isBuffer"] is True
    assert r["streamed"] == body.hex()
    assert r["getHeader"] == ["application/x-custom", "text/html, application/json", None]
    assert r["incoming"] is True
    assert (r["rid"], r["handler"], r["key"]) == (rid, "web.report", "STS.http")
    log = server.request_log(rid)
    assert log.startswith("FC Invoke Start RequestId: %s\n" % rid)
    assert log.endswith("FC Invoke End RequestId: %s\n" % rid)


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
    r = json.loads(http_ok(http_invoke(conn, target, handler="web.report", base_path=base))[3])
    assert r["path"] == path
    assert r["queries"] == {}
    assert r["body"] == ""


@pytest.mark.parametrize("path,method", [("/invoke", "POST"), ("/initialize", "POST"),
                                         ("/pre-stop", "GET")])
def test_http_header_decides_not_the_path(conn, path, method):
    r = json.loads(http_ok(http_invoke(conn, path + "?q=1", method=method, body=b"x",
                                       handler="web.report"))[3])
    assert (r["method"], r["path"], r["queries"], r["body"]) == (method, path, {"q": "1"}, "78")


def test_http_request_is_a_readable_stream(conn):
    body = os.urandom(300 * 1024)
    for handler in ("web.piped", "web.iterated"):
        assert http_ok(http_invoke(conn, "/", method="POST", body=body, handler=handler))[3] == body
    assert http_ok(http_invoke(conn, "/", handler="web.iterated"))[3] == b""


def test_http_response_status_headers_and_binary_body(rt_server):
    c = rt_server.connection()
    body = os.urandom(4096)
    status, reason, headers, data = http_ok(http_invoke(
        c, BASE + "/bin", method="POST", body=body, handler="web.binary", base_path=BASE))
    assert status == 207
    assert data == bytes(range(256)) + body[::-1]
    assert header_values(headers, "set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert header_values(headers, "content-type") == ["application/octet-stream"]
    assert header_values(headers, "content-length") == [str(len(data))]
    assert header_values(headers, "x-mixed-case") == ["Value With Case"]
    c.close()


def test_http_header_names_keep_their_case(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nx-fc-control-path: /http-invoke\r\n"
                 b"x-fc-function-handler: web.binary\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    assert "\r\nX-Mixed-Case: Value With Case\r\n" in head, head
    assert "\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; HttpOnly\r\n" in head, head


def test_http_header_operations(conn):
    r = json.loads(http_ok(http_invoke(conn, "/", handler="web.headerOps"))[3])
    assert r == {"had": True, "has": False, "list": ["1", "2"], "chained": True}
    _, _, headers, _ = http_ok(http_invoke(conn, "/", handler="web.headerOps"))
    assert header_values(headers, "x-list") == ["1", "2"]
    assert header_values(headers, "x-chained") == ["c"]
    assert not header_values(headers, "x-gone")


def test_http_reserved_response_headers_are_dropped(conn):
    status, _, headers, data = http_ok(http_invoke(conn, "/", handler="web.reserved"))
    assert (status, data) == (200, b"fine")
    assert header_values(headers, "x-fc-status") == ["200"]
    assert header_values(headers, "content-length") == ["4"]
    assert header_values(headers, "x-kept") == ["yes"]
    for name in ("x-fc-error-type", "transfer-encoding"):
        assert not header_values(headers, name), headers
    assert header_values(headers, "connection") != ["close"]
    assert ok(call(conn, body=b"still", handler="index.echo")) == b"still"


def test_http_text_no_content_and_head(conn):
    assert http_ok(http_invoke(conn, "/", handler="web.text"))[3] == "caf\u00e9".encode()
    status, _, headers, data = http_ok(http_invoke(conn, "/", handler="web.noContent"))
    assert (status, data) == (204, b"")
    assert header_values(headers, "x-kept") == ["yes"]
    # HEAD: the length of what GET would send, no body bytes (the connection stays in sync).
    status, _, headers, data = http_ok(http_invoke(conn, "/", method="HEAD", handler="web.text"))
    assert (status, data) == (200, b"")
    assert header_values(headers, "content-length") == ["5"]
    assert http_ok(http_invoke(conn, "/", handler="web.text"))[3] == "caf\u00e9".encode()


def test_http_send_a_stream(conn):
    status, _, headers, data = http_ok(http_invoke(conn, "/?n=40", handler="web.streamed"))
    assert status == 200
    assert len(data) == 40 * 64 * 1024
    assert data[:3] == b"aaa" and data[-1:] == bytes([97 + 39 % 26])
    assert header_values(headers, "content-length") == [str(len(data))]
    assert header_values(headers, "content-type") == ["text/plain"]
    assert http_ok(http_invoke(conn, "/", handler="web.streamStrings"))[3] == b"str-buf"


def test_http_failing_stream(rt_server):
    c = rt_server.connection()
    http_failure(http_invoke(c, "/", handler="web.streamFails"),
                 unhandled_type(rt_server.runtime, "Error"), "stream broke")
    c.close()


def test_http_send_only_once(server, conn):
    rid = new_rid()
    assert http_ok(http_invoke(conn, "/", handler="web.sendTwice", rid=rid))[3] == b"first"
    server.wait_output("sendTwice: can not send multi times / can not set headers after they are sent")


def test_http_thrown_and_rejected(rt_server):
    c = rt_server.connection()
    rt = rt_server.runtime
    rid = new_rid()
    err = http_failure(http_invoke(c, BASE + "/x", method="POST", body=b"in", rid=rid,
                                   handler="web.throws", base_path=BASE),
                       unhandled_type(rt, "Error"), "http boom")
    assert err["stackTrace"][0] == "Error: http boom"
    assert "at helper (" in err["stackTrace"][1] and "web.js" in err["stackTrace"][1]
    log = rt_server.request_log(rid)
    assert log.endswith("FC Invoke End RequestId: %s, Error: Unhandled function error\n" % rid)
    assert re.search(r"^%s %s \[error\] Error: http boom" % (TS, re.escape(rid)), log, re.M), log
    http_failure(http_invoke(c, "/", handler="web.rejects"),
                 unhandled_type(rt, "RangeError"), "async http")
    # A throw after send: the response stands, the error is only logged.
    assert http_ok(http_invoke(c, "/", handler="web.throwsAfterSend"))[3] == b"sent"
    rt_server.wait_output("[error] Error: too late")
    assert ok(call(c, body=b"after", handler="index.echo")) == b"after"
    c.close()


@pytest.mark.parametrize("handler,name,message", [
    ("web.badStatus", "TypeError", "statusCode should be an `integer`"),
    ("web.badHeader", "TypeError", 'Invalid character in header "X-A"'),
    ("web.badBody", "TypeError", "body should be a `Buffer` or a `string` or a `stream.Readable`"),
])
def test_http_api_misuse(conn, handler, name, message):
    err = http_failure(http_invoke(conn, "/", handler=handler), name, message)
    # The user's frame that made the bad call is kept, the runtime's are not.
    assert any("web.js" in line for line in err["stackTrace"]), err


@pytest.mark.parametrize("handler,error_type", [
    ("web.nope", "HandlerNotFound"),
    ("no_such_module.handler", "ImportModuleError"),
    ("nodot", "InvalidHandlerName"),
])
def test_http_load_errors(conn, handler, error_type):
    http_failure(http_invoke(conn, "/", handler=handler), error_type)


def test_http_express_style_adapter(conn):
    status, _, headers, data = http_ok(http_invoke(
        conn, BASE + "/users/7?x=1", method="POST", body=b"payload", handler="web.adapter",
        base_path=BASE, headers=[("Content-Type", "text/plain")]))
    assert status == 200
    assert json.loads(data) == {"url": "/users/7?x=1", "method": "POST", "body": "payload"}
    assert header_values(headers, "set-cookie") == ["s=1", "t=2"]
    status, _, _, _ = http_ok(http_invoke(conn, BASE + "/other", handler="web.adapter",
                                          base_path=BASE))
    assert status == 404


def test_http_and_events_share_one_process(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    assert ok(call(c, body=b"event-1", handler="index.echo")) == b"event-1"
    assert http_ok(http_invoke(c, "/", handler="web.text"))[3] == "caf\u00e9".encode()
    assert ok(call(c, body=b"event-2", handler="index.echo",
                   headers={"x-fc-control-path": "/invoke"})) == b"event-2"
    c.close()


def test_http_requests_interleave(server):
    """10 HTTP requests inside the handler at once (a barrier proves it), each answered from
    its own req and context."""
    n = 10
    rids = [new_rid() for _ in range(n)]

    def one(i):
        c = server.connection()
        try:
            return http_invoke(c, BASE + "/item/%d?n=%d" % (i, n), method="POST",
                               body=b"body-%d" % i, handler="web.barrier", rid=rids[i],
                               base_path=BASE)
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    for i, r in enumerate(results):
        got = json.loads(http_ok(r)[3])
        assert got == {"rid": rids[i], "path": "/item/%d" % i, "body": "body-%d" % i}


# ---------------------------------------------------------------------------
# Logging and markers
# ---------------------------------------------------------------------------

def test_console_format_and_markers(server, conn):
    rid = new_rid()
    assert ok(call(conn, body=b"msg-42", handler="index.log", rid=rid)) == b"logged"
    log = server.request_log(rid)
    lines = log.split("\n")
    assert lines[0] == "FC Invoke Start RequestId: %s" % rid
    assert lines[-2] == "FC Invoke End RequestId: %s" % rid
    r = re.escape(rid)
    for pattern in (
        r"\[verbose\] log msg-42 \{ k: 1 \}",
        r"\[info\] info msg-42",
        r"\[warn\] warn msg-42",
        r"\[error\] error msg-42",
        r"\[debug\] debug msg-42",
        r"\[info\] ctx-info msg-42",
        r"\[verbose\] ctx-verbose msg-42",
        r"\[error\] ctx-error msg-42",
        # Newlines inside one call become \r: one record per call.
        r"\[verbose\] multi\rline msg-42",
    ):
        assert re.search(r"^%s %s %s$" % (TS, r, pattern), log, re.M), (pattern, log)
    assert "\nraw msg-42\n" in log
    # The records keep the order of the calls.
    order = ["log msg-42", "info msg-42", "warn msg-42", "error msg-42", "debug msg-42",
             "ctx-info", "ctx-verbose", "ctx-error", "multi\rline", "raw msg-42"]
    positions = [log.index(x) for x in order]
    assert positions == sorted(positions), log


def test_log_levels(server, conn):
    rid = new_rid()
    assert ok(call(conn, handler="index.logLevels", rid=rid)) == b"ok"
    log = server.request_log(rid)
    assert "hidden-info" not in log and "hidden-ctx-warn" not in log
    assert re.search(r"^%s %s \[verbose\] still-verbose$" % (TS, re.escape(rid)), log, re.M), log
    assert re.search(r"^%s %s \[warn\] shown-warn$" % (TS, re.escape(rid)), log, re.M), log
    assert re.search(r"^%s %s \[error\] shown-ctx-error$" % (TS, re.escape(rid)), log, re.M), log


def test_first_load_is_announced_inside_the_markers(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    rid = new_rid()
    assert ok(call(c, body=b"x", handler="index.echo", rid=rid)) == b"x"
    assert srv.request_log(rid) == ("FC Invoke Start RequestId: %s\nload code for handler:index.echo\n"
                                    "FC Invoke End RequestId: %s\n" % (rid, rid))
    rid = new_rid()
    assert ok(call(c, body=b"y", handler="index.echo", rid=rid)) == b"y"
    assert srv.request_log(rid) == ("FC Invoke Start RequestId: %s\nFC Invoke End RequestId: %s\n"
                                    % (rid, rid))
    c.close()


# ---------------------------------------------------------------------------
# Initializer and lifecycle hooks
# ---------------------------------------------------------------------------

def test_initializer_runs_once(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    # A failing initializer: 404 + JSON, and it may be retried.
    rid0 = new_rid()
    assert_failure(call(c, path="/initialize", rid=rid0,
                        headers={"x-fc-function-initializer": "index.badInitializer"}),
                   "Unhandled", "Error", "init failed")
    assert srv.request_log(rid0, "Initialize").endswith(
        "FC Initialize End RequestId: %s, Error: Unhandled function error\n" % rid0)
    rid0 = new_rid()
    assert_failure(call(c, path="/initialize", rid=rid0,
                        headers={"x-fc-function-initializer": "index.handledBadInitializer"}),
                   "Handled", "Error", "init refused")
    assert srv.request_log(rid0, "Initialize").endswith(
        "FC Initialize End RequestId: %s, Error: Handled function error\n" % rid0)
    # The initializer from the header.
    rid1 = new_rid()
    status, headers, body = call(c, path="/initialize", rid=rid1,
                                 headers={"x-fc-function-initializer": "index.initializer"})
    assert (status, headers["x-fc-status"], body) == (200, "200", b"")
    log = srv.request_log(rid1, "Initialize")
    assert re.search(r"^%s %s \[verbose\] initializer ran$" % (TS, re.escape(rid1)), log, re.M), log
    state = json.loads(ok(call(c, handler="index.initState")))
    assert state == {"initCount": 1, "initValue": "initialized:" + rid1}
    # A second /initialize (here relying on FC_FUNCTION_INITIALIZER) does not rerun it.
    rid2 = new_rid()
    assert call(c, path="/initialize", rid=rid2)[0] == 200
    assert "FC Initialize Start RequestId: %s" % rid2 not in srv.output()
    assert json.loads(ok(call(c, handler="index.initState")))["initCount"] == 1
    c.close()


def test_concurrent_initialize_calls_run_it_once(fresh_server):
    srv = fresh_server()

    def one(_):
        c = srv.connection()
        try:
            return call(c, path="/initialize",
                        headers={"x-fc-function-initializer": "index.slowInitializer"})
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(4)))
    assert [r[0] for r in results] == [200] * 4
    c = srv.connection()
    assert json.loads(ok(call(c, handler="index.initState")))["initCount"] == 1
    c.close()


def test_no_initializer_configured(fresh_server):
    srv = fresh_server(extra_env={"FC_FUNCTION_INITIALIZER": ""})
    c = srv.connection()
    assert call(c, path="/initialize")[:3:2] == (200, b"")
    assert "Initialize" not in srv.output()
    c.close()


def test_initializer_load_error(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    assert_failure(call(c, path="/initialize",
                        headers={"x-fc-function-initializer": "index.missing"}),
                   "Unhandled", "HandlerNotFound")
    c.close()


def test_lifecycle_hooks(server, conn):
    rid = new_rid()
    status, _, body = call(conn, path="/pre-stop", method="GET", rid=rid, headers={
        "x-fc-instance-lifecycle-pre-stop-handler": "index.preStop"})
    assert (status, body) == (200, b"")
    log = server.request_log(rid, "PreStop")
    assert re.search(r"^%s %s \[verbose\] pre-stop ran %s$" % (TS, re.escape(rid), re.escape(rid)),
                     log, re.M), log
    assert log.endswith("FC PreStop End RequestId: %s\n" % rid)

    rid = new_rid()
    assert_failure(call(conn, path="/pre-freeze", method="GET", rid=rid, headers={
        "x-fc-instance-lifecycle-pre-freeze-handler": "index.preFreezeFail"}),
        "Unhandled", "Error", "freeze")
    assert server.request_log(rid, "PreFreeze").endswith(
        "FC PreFreeze End RequestId: %s, Error: Unhandled function error\n" % rid)

    rid = new_rid()
    assert_failure(call(conn, path="/pre-freeze", method="POST", rid=rid, headers={
        "x-fc-instance-lifecycle-pre-freeze-handler": "index.preFreezeHandled"}),
        "Handled", "FunctionHandledError", "not now")

    # No handler configured -> 200, empty body, for GET and POST.
    for path in ("/pre-stop", "/pre-freeze"):
        for method in ("GET", "POST"):
            status, headers, body = call(conn, path=path, method=method)
            assert (status, headers["x-fc-status"], body) == (200, "200", b"")


# ---------------------------------------------------------------------------
# Prewarmed instances: the function arrives on FCD_ASSIGNMENT_FD
# ---------------------------------------------------------------------------

def test_prewarmed_instance_takes_its_function_from_the_assignment(fresh_server, code_dir):
    srv = fresh_server(runtime="nodejs16", prewarmed=True)
    c = srv.connection()
    e = json.loads(ok(call(c, handler="index.env")))
    assert e["assignmentFd"] is None
    assert os.path.realpath(e["cwd"]) == os.path.realpath(code_dir)
    assert e["user"] == "user-value"
    assert "FC_SECRET_INTERNAL" not in e["fc"] and "FC_RUNTIME_VERSION" in e["fc"]
    # The assigned runtime name (FC 2.0 error names), handler and NODE_PATH are in effect.
    assert_failure(call(c, handler="index.throwError"), "Unhandled", "FunctionUnhandledError: Error")
    assert ok(call(c, body=b"default handler")) == b"default handler"
    assert ok(call(c, handler="uses_dep.handler")) == b"from node_modules"
    got = json.loads(ok(call(c, handler="index.ctx")))["json"]
    assert (got["function"]["name"], got["region"]) == ("fn", "cn-hangzhou")
    c.close()


def test_prewarmed_instance_dropped_without_assignment_exits_0(code_dir):
    rfd, wfd = os.pipe()
    env = dict(os.environ, FCD_ASSIGNMENT_FD=str(rfd), FC_SERVER_PORT=str(free_port()))
    proc = subprocess.Popen([NODE, BOOTSTRAP], cwd=code_dir, env=env, pass_fds=(rfd,),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    os.close(rfd)
    time.sleep(0.2)
    assert proc.poll() is None, "a prewarmed bootstrap waits for its assignment"
    os.close(wfd)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, out) == (0, b"")


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
        assert "keep-alive" not in headers  # no idle timeout is announced
        assert c.sock is sock and sock.getsockname() == local
    c.close()


def test_idle_keepalive_connection_is_not_closed(server):
    """Node closes idle keep-alive connections after 5 s by default; FC's must stay open."""
    c = server.connection()
    assert ok(call(c, body=b"1", handler="index.echo")) == b"1"
    sock = c.sock
    time.sleep(6)
    assert ok(call(c, body=b"2", handler="index.echo")) == b"2"
    assert c.sock is sock
    c.close()


def test_connection_close_is_honoured(server):
    c = server.connection()
    status, headers, _ = call(c, handler="index.retNull", headers={"connection": "close"})
    assert status == 200
    assert headers.get("connection", "").lower() == "close"
    c.close()


def test_startup_prints_nothing(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    assert call(c, path="/pre-stop", method="GET")[0] == 200  # a no-op round trip
    time.sleep(0.05)
    assert srv.output() == ""
    c.close()


def test_bad_port_fails_fast(code_dir):
    proc = subprocess.run([NODE, BOOTSTRAP], cwd=code_dir, capture_output=True, timeout=TIMEOUT,
                          env=dict(os.environ, FC_SERVER_PORT="nope"))
    assert proc.returncode == 1
    assert b"invalid port" in proc.stderr


def test_sigterm_exits_143(fresh_server):
    srv = fresh_server()
    c = srv.connection()
    assert ok(call(c, body=b"x", handler="index.echo")) == b"x"
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(TIMEOUT) == 143
    srv.wait_output("SIGTERM")
    c.close()


def _bare_listener_startup(port):
    """Time until a bare `node -e` that only listens accepts a connection."""
    code = "require('net').createServer().listen(%d)" % port
    return time_to_accept([NODE, "-e", code], port)


def test_measure_latency_and_startup(fresh_server, server):
    """Prints numbers; asserts only correctness."""
    c = server.connection()
    call(c, handler="index.retNull")  # warm the module cache
    n = 1000
    t0 = time.perf_counter()
    for _ in range(n):
        assert ok(call(c, handler="index.retNull")) == b""
    mean_us = (time.perf_counter() - t0) / n * 1e6
    c.close()
    raw_us = raw_latency(server.port, n, 'index.retNull') * 1e6

    def node_e0():
        t = time.perf_counter()
        subprocess.run([NODE, "-e", "0"], check=True)
        return time.perf_counter() - t

    runs = 9
    base = sorted(node_e0() for _ in range(runs))
    bare = sorted(_bare_listener_startup(free_port()) for _ in range(runs))
    connects, firsts = [], []
    for _ in range(runs):
        srv = fresh_server()
        connects.append(srv.t_connect)
        fc = srv.connection()
        assert ok(call(fc, handler="index.retNull")) == b""
        firsts.append(time.perf_counter() - srv.t_start)
        fc.close()
        srv.stop()
    connects.sort()
    firsts.sort()
    assigned, assigned_firsts = [], []
    for _ in range(runs):
        srv = fresh_server(prewarmed=True, prewarm_s=0.3)
        assigned.append(srv.t_connect)
        fc = srv.connection()
        assert ok(call(fc, handler="index.retNull")) == b""
        assigned_firsts.append(time.perf_counter() - srv.t_start)
        fc.close()
        srv.stop()
    assigned.sort()
    assigned_firsts.sort()
    mid = runs // 2
    print("\n[fcd nodejs bootstrap] %s (node %s)"
          % (NODE, subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout.strip()))
    print("  no-op invoke, one keep-alive connection, %d calls: mean %.1f us (http.client), "
          "%.1f us (raw socket client)" % (n, mean_us, raw_us))
    print("  `node -e 0` (incl. teardown): min %.1f ms, median %.1f ms"
          % (base[0] * 1e3, base[mid] * 1e3))
    print("  bare `node -e` net listen, to first accepted connection: min %.1f ms, median %.1f ms"
          % (bare[0] * 1e3, bare[mid] * 1e3))
    print("  bootstrap, to first accepted connection: min %.1f ms, median %.1f ms"
          % (connects[0] * 1e3, connects[mid] * 1e3))
    print("  bootstrap, to first invoke response (incl. loading index.js): min %.1f ms, median %.1f ms"
          % (firsts[0] * 1e3, firsts[mid] * 1e3))
    print("  prewarmed bootstrap, from assignment to first accepted connection: "
          "min %.1f ms, median %.1f ms" % (assigned[0] * 1e3, assigned[mid] * 1e3))
    print("  prewarmed bootstrap, from assignment to first invoke response: "
          "min %.1f ms, median %.1f ms" % (assigned_firsts[0] * 1e3, assigned_firsts[mid] * 1e3))
