// fcd Node.js runtime bootstrap (nodejs12, nodejs14, nodejs16, nodejs18, nodejs20).
//
// fcd starts one of these per function instance as
//     node [--max-old-space-size=N] bootstrap.js
// with cwd = the function's code directory and the same environment it gives the Python
// bootstrap (python/bootstrap.py, whose instance contract this file mirrors).  It serves the
// custom-runtime (CAPort) HTTP contract on 0.0.0.0:$FC_SERVER_PORT, so fcd talks to the
// built-in Node runtimes exactly as it talks to a custom runtime:
//
//   POST /invoke       exports.handler(event: Buffer, context, callback)
//   POST /initialize   exports.initialize(context, callback), until it succeeds once
//   GET|POST /pre-freeze, /pre-stop   the lifecycle hooks, (context, callback)
//   any method and path with "x-fc-control-path: /http-invoke": an HTTP-trigger request,
//     exports.handler(req, resp, context) answering through resp.send()
//
// Success: 200 + "x-fc-status: 200", body = the result; for an HTTP request the handler's
//          status, headers and body + "x-fc-status: 200".
// Failure: 404 + "x-fc-status: 404" + "x-fc-error-type: HandledInvocationError" (callback(err))
//          or "UnhandledInvocationError" (thrown, rejected, load errors)
//          + JSON {"errorMessage", "errorType", "stackTrace": [lines]}.
// stdout gets "FC <Invoke|Initialize|PreFreeze|PreStop> Start RequestId: <id>" before the user
// code runs and the matching "End" line (", Error: Handled|Unhandled function error" on
// failure) before the response is sent; fcd cuts the log tail by them.
//
// FC_RUNTIME_VERSION selects what differs between FC's Node runtimes:
//   nodejs12..16 (FC 2.0): the result comes only through callback; a promise returned by the
//     handler only has a rejection handler attached (its value is ignored, so an async handler
//     that never calls callback runs until the timeout); unhandled errorType is prefixed
//     "FunctionUnhandledError: <Name>".
//   nodejs18, nodejs20 (FC 3.0): a returned promise's value is also the result (unless
//     callback came first); unhandled errorType is the plain error name.
//
// Standard library only, CommonJS, Node 12 syntax (no ?., ??, class fields, "node:" ids).
// Start-up is kept cheap: only `net` is loaded before listening; `http` is loaded right after,
// and every socket the net listener accepts is handed to an http.Server that never listens
// itself.  Everything else is loaded on first use.

'use strict';

const net = require('net');

// --------------------------------------------------------------------------------------------
// Prewarmed instances (as python/bootstrap.py's _await_assignment).
//
// fcd may start the interpreter ahead of time, inside an instance's jail but before it knows
// which function the instance is for, with FCD_ASSIGNMENT_FD naming a pipe.  Everything the
// bootstrap would load later is loaded first, so that cost is paid before a request waits on
// it; then fcd mounts the function's code at /code, writes one JSON object
// {"env": {...}, "cwd": "..."} (the function's FC_* and user variables) and closes the pipe.
// EOF without an assignment means the instance is dropped.  Runs before any configuration is
// read below, and uses nothing declared after it.
// --------------------------------------------------------------------------------------------

function awaitAssignment() {
  const fdText = process.env.FCD_ASSIGNMENT_FD;
  if (fdText === undefined) return;
  delete process.env.FCD_ASSIGNMENT_FD;
  const fs = require('fs');
  require('http');
  require('path');
  require('util');
  require('module');
  require('cluster'); // net.Server.listen loads it on first use
  // The stdio streams are created on first use; create them now too.
  void process.stdout;
  void process.stderr;
  const nodePathBefore = process.env.NODE_PATH;
  const fd = parseInt(fdText, 10);
  const chunks = [];
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (;;) {
    let n;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EINTR') continue;
      if (e.code === 'EAGAIN') {
        // A non-blocking pipe after all: wait a millisecond, synchronously.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        continue;
      }
      throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  try {
    fs.closeSync(fd);
  } catch (e) {
    // already closed
  }
  if (chunks.length === 0) process.exit(0);
  let assignment;
  try {
    assignment = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    process.stderr.write('fcd nodejs bootstrap: bad assignment: ' + e.message + '\n');
    process.exit(1);
  }
  const vars = (assignment && assignment.env) || {};
  for (const k of Object.keys(vars)) process.env[k] = String(vars[k]);
  process.chdir(assignment.cwd || process.env.FC_FUNC_CODE_PATH || '/code');
  // Node read NODE_PATH when it started; a different one must be read again.
  if (process.env.NODE_PATH !== nodePathBefore) {
    const Module = require('module');
    if (typeof Module._initPaths === 'function') Module._initPaths();
  }
}

awaitAssignment();

// --------------------------------------------------------------------------------------------
// Configuration, captured before the environment is scrubbed.
// --------------------------------------------------------------------------------------------

const env = process.env;
const PORT_STR = env.FC_SERVER_PORT || env.FC_CUSTOM_LISTEN_PORT || '9000';
const CODE_DIR_RAW = env.FC_FUNC_CODE_PATH || process.cwd();
const DEFAULT_HANDLER = env.FC_FUNCTION_HANDLER || '';
const DEFAULT_INITIALIZER = env.FC_FUNCTION_INITIALIZER || '';
const LOG_LEVEL_NAME = env.FC_SERVER_LOG_LEVEL || '';
const ENV_MEMORY = env.FC_FUNCTION_MEMORY_SIZE || '';
const ENV_FUNCTION_NAME = env.FC_FUNCTION_NAME || '';
const ENV_SERVICE_NAME = env.FC_SERVICE_NAME || '';
const ENV_REGION = env.FC_REGION || '';
const ENV_ACCOUNT_ID = env.FC_ACCOUNT_ID || '';
const ENV_QUALIFIER = env.FC_QUALIFIER || '';
const ENV_VERSION_ID = env.FC_VER_ID || '';
const RUNTIME = env.FC_RUNTIME_VERSION || '';

// The FC runtime's major Node version; without FC_RUNTIME_VERSION, the Node that runs us.
const RUNTIME_MAJOR = (function () {
  const m = /^nodejs(\d+)/.exec(RUNTIME) || /^(\d+)/.exec(process.versions.node);
  return m ? parseInt(m[1], 10) : 0;
})();
// FC 3.0's Node 18+ runtimes take an async handler's resolved value as the result; FC 2.0's
// (nodejs16 and earlier) only attach .catch to the promise (fc-runtime-contract.md 4.2).
const PROMISE_VALUE_IS_RESULT = RUNTIME_MAJOR >= 18;
// FC 2.0 reports a thrown Error as errorType "FunctionUnhandledError: <Name>"; FC 3.0's Node 18+
// runtimes as "<Name>" (4.2 and 17.3).
const UNHANDLED_PREFIX = RUNTIME_MAJOR >= 18 ? '' : 'FunctionUnhandledError: ';

// FC's bootstraps delete every other FC_* variable before user code loads (section 3).
const SAFE_FC_ENV = {
  FC_FUNC_CODE_PATH: 1, FC_FUNCTION_MEMORY_SIZE: 1, FC_RUNTIME_VERSION: 1, FC_ACCOUNT_ID: 1,
  FC_FUNCTION_HANDLER: 1, FC_FUNCTION_NAME: 1, FC_SERVICE_NAME: 1, FC_VER_ID: 1,
  FC_QUALIFIER: 1, FC_REGION: 1, FC_INSTANCE_ID: 1, FC_SNAPSHOT_FLAG: 1,
  FC_CUSTOM_LISTEN_PORT: 1, FC_SERVER_PORT: 1,
};

function scrubEnv() {
  for (const key of Object.keys(env)) {
    if ((key.startsWith('FC_') || key.startsWith('_FC_')) && !SAFE_FC_ENV[key]) {
      delete env[key];
    }
  }
}

// --------------------------------------------------------------------------------------------
// Output: markers, log records, the user-facing console and context.logger.
// --------------------------------------------------------------------------------------------

// stdout and stderr are one pipe on fcd's side.  Node's stdio streams write to a pipe at once
// (libuv tries the write synchronously), so markers, console records and raw
// process.stdout.write calls keep the order they were made in.  fs.writeSync is not used: libuv
// puts the shared pipe in non-blocking mode, where a direct write could fail with EAGAIN.
function writeOut(text) {
  try {
    process.stdout.write(text);
  } catch (e) {
    // stdout gone: nothing useful to do.
  }
}

function writeErr(text) {
  try {
    process.stderr.write(text);
  } catch (e) {
    // stderr gone.
  }
}

const LEVELS = new Map([['verbose', 0], ['debug', 1], ['info', 2], ['warn', 3], ['error', 4],
  // FC_SERVER_LOG_LEVEL may use Python's names.
  ['warning', 3], ['critical', 4], ['fatal', 4], ['notset', 0], ['silly', 0]]);
const LOG_RECORD_LIMIT = 256 * 1024;

function levelOf(name) {
  return typeof name === 'string' ? LEVELS.get(name.trim().toLowerCase()) : undefined;
}

let utilModule = null;

function formatArgs(args) {
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  if (utilModule === null) utilModule = require('util');
  return utilModule.format.apply(null, args);
}

// One FC log record: "<ISO8601 ms Z> <requestId> [<level>] <message>".  Newlines inside one
// call become \r so that a call stays one record (4.4); long records are cut like FC cuts them.
function logRecord(level, requestId, text) {
  if (text.length > LOG_RECORD_LIMIT) {
    text = text.slice(0, LOG_RECORD_LIMIT) + '... Truncated by FunctionCompute';
  }
  const line = new Date().toISOString() + ' ' + requestId + ' [' + level + '] ' +
    (text.indexOf('\n') === -1 ? text : text.replace(/\n/g, '\r')) + '\n';
  if (level === 'warn' || level === 'error') writeErr(line);
  else writeOut(line);
}

// Request id of the most recently started request.  console.* uses it, as FC's console does
// (process-global: under instance concurrency > 1 a console line may carry another in-flight
// request's id, the caveat of 4.4).  Exact per-request attribution would need AsyncLocalStorage,
// which was measured at 3-4x slower promise-heavy user code on Node 20; context.logger is the
// per-request logger, as in FC.
let currentRequestId = '';
let consoleLevel = levelOf(LOG_LEVEL_NAME);
if (consoleLevel === undefined) consoleLevel = 0;

function installConsole() {
  const c = console;
  const make = function (level) {
    const rank = LEVELS.get(level);
    return function () {
      if (rank < consoleLevel) return;
      logRecord(level, currentRequestId, formatArgs(arguments));
    };
  };
  // console.log is "verbose" in FC (4.4).
  c.log = make('verbose');
  c.debug = make('debug');
  c.info = make('info');
  c.warn = make('warn');
  c.error = make('error');
  c.setLogLevel = function (name) {
    const lv = levelOf(name);
    if (lv !== undefined) consoleLevel = lv;
  };
}

// context.logger: the same format, bound to one request's id, with its own level.
function ContextLogger(requestId) {
  this.requestId = requestId;
  this.level = 0;
}

function contextLogMethod(level) {
  const rank = LEVELS.get(level);
  return function () {
    if (rank < this.level) return;
    logRecord(level, this.requestId, formatArgs(arguments));
  };
}

ContextLogger.prototype.verbose = contextLogMethod('verbose');
ContextLogger.prototype.log = contextLogMethod('verbose');
ContextLogger.prototype.debug = contextLogMethod('debug');
ContextLogger.prototype.info = contextLogMethod('info');
ContextLogger.prototype.warn = contextLogMethod('warn');
ContextLogger.prototype.error = contextLogMethod('error');
ContextLogger.prototype.setLogLevel = function (name) {
  const lv = levelOf(name);
  if (lv !== undefined) this.level = lv;
};

// --------------------------------------------------------------------------------------------
// The context object (fc-runtime-contract.md 4.2).
// --------------------------------------------------------------------------------------------

function intOr(value, dflt) {
  if (value === undefined || value === '') return dflt;
  const n = parseInt(value, 10);
  return isNaN(n) ? dflt : n;
}

function decodeBaggages(value) {
  if (!value) return {};
  try {
    const obj = JSON.parse(Buffer.from(value.trim(), 'base64').toString('utf8'));
    return obj !== null && typeof obj === 'object' && !Array.isArray(obj) ? obj : {};
  } catch (e) {
    return {};
  }
}

function makeContext(h, handler) {
  const requestId = h['x-fc-request-id'] || '';
  const ctx = {
    requestId: requestId,
    credentials: {
      accessKeyId: h['x-fc-access-key-id'] || '',
      accessKeySecret: h['x-fc-access-key-secret'] || '',
      securityToken: h['x-fc-security-token'] || '',
    },
    function: {
      name: h['x-fc-function-name'] || ENV_FUNCTION_NAME,
      handler: handler,
      memory: intOr(h['x-fc-function-memory'] || ENV_MEMORY, null),
      timeout: intOr(h['x-fc-function-timeout'], null),
    },
    service: {
      name: h['x-fc-service-name'] || ENV_SERVICE_NAME,
      logProject: h['x-fc-service-logproject'] || '',
      logStore: h['x-fc-service-logstore'] || '',
      qualifier: h['x-fc-qualifier'] || ENV_QUALIFIER,
      versionId: h['x-fc-version-id'] || ENV_VERSION_ID,
    },
    region: h['x-fc-region'] || ENV_REGION,
    accountId: h['x-fc-account-id'] || ENV_ACCOUNT_ID,
    retryCount: intOr(h['x-fc-retry-count'], 0),
    tracing: {
      openTracingSpanContext: h['x-fc-tracing-opentracing-span-context'] || '',
      openTracingSpanBaggages: decodeBaggages(h['x-fc-tracing-opentracing-span-baggages']),
      jaegerEndpoint: h['x-fc-tracing-jaeger-endpoint'] || '',
    },
  };
  // Not enumerable, so JSON.stringify(context) shows only the data fields.
  Object.defineProperty(ctx, 'logger', {
    value: new ContextLogger(requestId), writable: true, configurable: true, enumerable: false,
  });
  // FC's flag is kept for compatibility but has no effect here: this process is a long-lived
  // server whose event loop never empties, and FC's default (false) answers at the callback.
  let waits = false;
  Object.defineProperty(ctx, 'waitsForEmptyEventLoopBeforeCallback', {
    configurable: true,
    enumerable: false,
    get: function () { return waits; },
    set: function (v) { waits = !!v; },
  });
  return ctx;
}

// --------------------------------------------------------------------------------------------
// Errors: what goes into the error body and the log.
// --------------------------------------------------------------------------------------------

function LoadError(errorType, message) {
  this.errorType = errorType;
  this.message = message;
}

function isErrorLike(e) {
  return e instanceof Error ||
    (e !== null && typeof e === 'object' && typeof e.message === 'string' && typeof e.stack === 'string');
}

function errorName(e) {
  if (typeof e.name === 'string' && e.name) return e.name;
  return (e.constructor && e.constructor.name) || 'Error';
}

function nonErrorMessage(v) {
  if (typeof v === 'string') return v;
  try {
    const s = JSON.stringify(v);
    if (s !== undefined) return s;
  } catch (e) {
    // fall through
  }
  return String(v);
}

// A missing dependency's message lists the require chain, which ends in this file.
const REQUIRE_STACK_LINE = '\n- ' + __filename;

function cleanMessage(message) {
  const m = String(message);
  return m.indexOf(REQUIRE_STACK_LINE) === -1 ? m : m.split(REQUIRE_STACK_LINE).join('');
}

// err.stack as lines, without the runtime's own frames: the stack is cut at the first frame in
// this file that follows another frame (leading ones, of an error the runtime's API raised for
// a bad call, are dropped), and Node's module-loader frames just above it (the require chain of
// an error raised while a module loads) go with it.
function stackLines(e) {
  let stack;
  try {
    stack = e.stack;
  } catch (x) {
    return [];
  }
  if (typeof stack !== 'string' || !stack) return [];
  const lines = stack.split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.indexOf(__filename) !== -1) {
      if (/^\s+at /.test(line)) {
        // An error raised by the runtime's API on user code's behalf (resp.setHeader...)
        // starts with runtime frames: skip those, keep the user's frames that called it.
        if (!out.some(function (l) { return /^\s+at /.test(l); })) continue;
        break;
      }
      if (line === REQUIRE_STACK_LINE.slice(1)) continue;
    }
    out.push(line);
  }
  // "node:internal/modules/..." on Node 16+, "internal/modules/....js" on Node 12 and 14.
  while (out.length > 1 && /^\s+at .*[( ](node:)?internal\/modules\//.test(out[out.length - 1])) {
    out.pop();
  }
  return out;
}

function failureBody(errorType, message, stack) {
  const o = { errorMessage: message, errorType: errorType };
  if (stack) o.stackTrace = stack;
  return JSON.stringify(o);
}

// callback(err): HandledInvocationError.  For an Error the body is FC's
// {"errorMessage","errorType":<name>,"stackTrace":[...]}.  For anything else (callback('oops'))
// the FC 2.0 docs show only {"errorMessage":"oops"} while FC's runtime also sends
// "errorType":"FunctionHandledError" (17.2); the latter is a superset of the former, so it is
// what we send: clients reading either shape get what they expect.
function handledFailure(err) {
  if (isErrorLike(err)) {
    return { errorType: errorName(err), message: cleanMessage(err.message), stack: stackLines(err) };
  }
  return { errorType: 'FunctionHandledError', message: nonErrorMessage(err), stack: null };
}

// A thrown error, a rejected promise, an uncaught exception: UnhandledInvocationError.  A
// thrown non-Error has no name to report; it gets the bare "FunctionUnhandledError", the
// counterpart of callback('oops')'s "FunctionHandledError".
function unhandledFailure(err) {
  if (err instanceof LoadError) {
    return { errorType: err.errorType, message: err.message, stack: [] };
  }
  if (isErrorLike(err)) {
    return {
      errorType: UNHANDLED_PREFIX + errorName(err),
      message: cleanMessage(err.message),
      stack: stackLines(err),
    };
  }
  return { errorType: 'FunctionUnhandledError', message: nonErrorMessage(err), stack: [] };
}

function logFailure(requestId, f) {
  const text = f.stack && f.stack.length ? f.stack.join('\n') : f.errorType + ': ' + f.message;
  logRecord('error', requestId, text);
}

// --------------------------------------------------------------------------------------------
// Loading user code: "file.func" or "dir/file.func" -> <code dir>/dir/file.js, exported func.
// --------------------------------------------------------------------------------------------

let CODE_DIR = CODE_DIR_RAW;
let pathModule = null;
let fsModule = null;
let userEnvReady = false;
const handlerCache = new Map();

// Done once, right before the first user module loads: FC's console, the layer directories on
// the module path (as fc-docker's NODE_PATH has them, section 5).
function prepareUserEnv() {
  if (userEnvReady) return;
  userEnvReady = true;
  installConsole();
  // Layers are at /opt; an instance outside a jail is told where they are instead.
  const opt = env.FCD_LAYERS_DIR || '/opt';
  const extra = [opt + '/nodejs/node' + RUNTIME_MAJOR + '/node_modules', opt + '/nodejs/node_modules']
    .filter(function (d) { return fsModule.existsSync(d); });
  if (extra.length) {
    const current = env.NODE_PATH ? env.NODE_PATH.split(pathModule.delimiter).filter(Boolean) : [];
    env.NODE_PATH = current.concat(extra.filter(function (d) { return current.indexOf(d) === -1; }))
      .join(pathModule.delimiter);
    const Module = require('module');
    if (typeof Module._initPaths === 'function') Module._initPaths();
  }
}

function loadHandler(handler) {
  const cached = handlerCache.get(handler);
  if (cached !== undefined) return cached;
  if (pathModule === null) {
    pathModule = require('path');
    fsModule = require('fs');
    CODE_DIR = pathModule.resolve(CODE_DIR_RAW);
  }
  const invalid = function () {
    return new LoadError('InvalidHandlerName', "Invalid handler '" + handler + "'");
  };
  const dot = handler.lastIndexOf('.');
  if (dot <= 0 || dot === handler.length - 1 || handler.indexOf('\0') !== -1) throw invalid();
  const modPath = handler.slice(0, dot).replace(/^\/+/, '');
  const fname = handler.slice(dot + 1);
  if (!modPath || modPath.split('/').some(function (s) { return s === '..' || s === ''; })) {
    throw invalid();
  }
  prepareUserEnv();
  const file = pathModule.join(CODE_DIR, modPath + '.js');
  let isFile = false;
  try {
    isFile = fsModule.statSync(file).isFile();
  } catch (e) {
    isFile = false;
  }
  if (!isFile) throw new LoadError('ImportModuleError', "Module '" + file + "' is missing.");
  // FC's runtime prints this on the first load of a handler (4.2); it lands inside the first
  // request's markers, like FC's.
  writeOut('load code for handler:' + handler + '\n');
  // Errors while evaluating the module (syntax errors, a throw at top level, a missing
  // dependency) propagate and are reported as the request's unhandled error.  require() forgets
  // a module that failed, so the next request tries again.
  const mod = require(file);
  const fn = mod === null || mod === undefined ? undefined : mod[fname];
  // Inherited Object.prototype members ("index.constructor") are not handlers.
  if (typeof fn !== 'function' || fn === Object.prototype[fname]) {
    throw new LoadError('HandlerNotFound', "Handler '" + fname + "' is missing on module '" + modPath + "'");
  }
  handlerCache.set(handler, fn);
  return fn;
}

// --------------------------------------------------------------------------------------------
// Result serialisation (4.2): null/undefined -> empty, Buffer raw, string as is, number and
// boolean toString(), objects compact JSON.stringify.  May throw (circular objects, BigInt
// inside objects): the request then fails as unhandled.
// --------------------------------------------------------------------------------------------

const EMPTY = Buffer.alloc(0);

function toBody(data) {
  if (data === null || data === undefined) return EMPTY;
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (typeof data === 'object') {
    const s = JSON.stringify(data);
    return s === undefined ? EMPTY : Buffer.from(s, 'utf8');
  }
  if (typeof data === 'function') return EMPTY;
  return Buffer.from(String(data), 'utf8');
}

// --------------------------------------------------------------------------------------------
// One run of user code between a Start and an End marker.  Only the first outcome counts:
// callback, promise settlement, throw, or an uncaught error while it is in flight.
// --------------------------------------------------------------------------------------------

const OK_HEADERS = { 'x-fc-status': '200' };
const inFlight = new Set();

function Run(label, requestId, res, isHook) {
  this.label = label;
  this.requestId = requestId;
  this.res = res;
  this.isHook = isHook;
  this.done = false;
  this.onEnd = null; // called with true (success) or false once the End marker is written
}

Run.prototype.start = function () {
  currentRequestId = this.requestId;
  inFlight.add(this);
  writeOut('FC ' + this.label + ' Start RequestId: ' + this.requestId + '\n');
};

Run.prototype.end = function (suffix) {
  this.done = true;
  inFlight.delete(this);
  writeOut('FC ' + this.label + ' End RequestId: ' + this.requestId + suffix + '\n');
  if (this.onEnd !== null) this.onEnd(suffix === '');
};

Run.prototype.succeed = function (data) {
  if (this.done) return;
  let body = EMPTY;
  if (!this.isHook) {
    try {
      body = toBody(data);
    } catch (e) {
      this.unhandled(e);
      return;
    }
  }
  this.end('');
  send(this.res, 200, OK_HEADERS, body);
};

Run.prototype.fail = function (kind, f) {
  this.done = true; // set before logging: a throwing logger must not re-enter
  logFailure(this.requestId, f);
  this.end(', Error: ' + kind + ' function error');
  send(this.res, 404, {
    'x-fc-status': '404',
    'x-fc-error-type': kind + 'InvocationError',
    'content-type': 'application/json',
  }, Buffer.from(failureBody(f.errorType, f.message, f.stack), 'utf8'));
};

Run.prototype.handled = function (err) {
  if (this.done) return;
  this.fail('Handled', handledFailure(err));
};

Run.prototype.unhandled = function (err) {
  if (this.done) {
    // A late throw after the outcome was settled (e.g. after callback): only logged.
    logFailure(this.requestId, unhandledFailure(err));
    return;
  }
  this.fail('Unhandled', unhandledFailure(err));
};

// The callback user code gets: callback(err, data).  A truthy err is a handled error, as in
// Node's callback convention; later calls are ignored.
Run.prototype.callback = function () {
  const run = this;
  return function (err, data) {
    if (run.done) return;
    if (err) run.handled(err);
    else run.succeed(data);
  };
};

// Calls fn(...args, callback) and wires its outcomes into the run.
Run.prototype.call = function (fn, args) {
  args.push(this.callback());
  let ret;
  try {
    ret = fn.apply(undefined, args);
  } catch (e) {
    this.unhandled(e);
    return;
  }
  if (ret !== null && typeof ret === 'object' && typeof ret.then === 'function') {
    const run = this;
    const onReject = function (e) {
      // A promise rejected with nothing still failed.
      run.unhandled(e === undefined || e === null ? new Error('Promise rejected with ' + e) : e);
    };
    if (PROMISE_VALUE_IS_RESULT) ret.then(function (v) { run.succeed(v); }, onReject);
    else ret.then(undefined, onReject);
  }
};

// --------------------------------------------------------------------------------------------
// Uncaught exceptions and unhandled rejections.
//
// FC reports an uncaught error as the unhandled failure of the request in flight and keeps the
// instance.  We do the same: every run in flight fails with it (with instance concurrency 1,
// the usual case, that is exactly the request that caused it; with several in flight the error
// cannot be attributed without per-request async tracking, and the culprit's request would
// otherwise most likely hang until the timeout, which kills the instance and all of them).
// With nothing in flight (a stray timer) the error is only logged.  The process keeps serving:
// Node documents that state after an uncaught exception may be inconsistent, but recycling the
// instance on every stray error would be harsher than FC; an instance that is really broken
// times out and is replaced by fcd.
// --------------------------------------------------------------------------------------------

function onUncaught(err) {
  if (inFlight.size === 0) {
    logFailure(currentRequestId, unhandledFailure(err));
    return;
  }
  for (const run of Array.from(inFlight)) run.unhandled(err);
}

// --------------------------------------------------------------------------------------------
// Endpoints.
// --------------------------------------------------------------------------------------------

function send(res, status, headers, body) {
  const h = { 'content-length': String(body.length) };
  for (const k in headers) h[k] = headers[k];
  res.writeHead(status, h);
  res.end(body);
}

// POST /invoke: the event handler.
function invokeEvent(headers, body, res) {
  const handler = headers['x-fc-function-handler'] || DEFAULT_HANDLER;
  const run = new Run('Invoke', headers['x-fc-request-id'] || '', res, false);
  run.start();
  let fn;
  try {
    fn = loadHandler(handler);
  } catch (e) {
    run.unhandled(e);
    return;
  }
  run.call(fn, [body, makeContext(headers, handler)]);
}

// A lifecycle hook fn(context, callback) between "<label> Start/End" markers; `then` gets
// whether it succeeded.
function runHook(label, hookHandler, headers, res, then) {
  const run = new Run(label, headers['x-fc-request-id'] || '', res, true);
  run.onEnd = then;
  run.start();
  let fn;
  try {
    fn = loadHandler(hookHandler);
  } catch (e) {
    run.unhandled(e);
    return;
  }
  run.call(fn, [makeContext(headers, headers['x-fc-function-handler'] || DEFAULT_HANDLER)]);
}

function sendEmptyOk(res) {
  send(res, 200, { 'x-fc-status': '200' }, EMPTY);
}

// POST /initialize: runs the initializer until it has succeeded once; calls are serialised, so
// concurrent ones wait for the running one and then see its outcome.
let initialized = false;
let initTail = Promise.resolve();

function initialize(headers, body, res) {
  const handler = headers['x-fc-function-initializer'] || DEFAULT_INITIALIZER;
  initTail = initTail.then(function () {
    if (initialized || !handler) {
      sendEmptyOk(res);
      return undefined;
    }
    return new Promise(function (resolve) {
      runHook('Initialize', handler, headers, res, function (ok) {
        if (ok) initialized = true;
        resolve();
      });
    });
  }).then(undefined, onUncaught); // a bug here must not wedge every later /initialize
}

function lifecycle(label, headerName) {
  return function (headers, body, res) {
    const handler = headers[headerName] || '';
    if (!handler) {
      sendEmptyOk(res);
      return;
    }
    runHook(label, handler, headers, res, null);
  };
}

// Routes of the event-function shape.  Each endpoint gets (headers, body: Buffer, res).
const preStop = lifecycle('PreStop', 'x-fc-instance-lifecycle-pre-stop-handler');
const preFreeze = lifecycle('PreFreeze', 'x-fc-instance-lifecycle-pre-freeze-handler');
const ROUTES = {
  'POST /invoke': invokeEvent,
  'POST /initialize': initialize,
  'GET /pre-stop': preStop,
  'POST /pre-stop': preStop,
  'GET /pre-freeze': preFreeze,
  'POST /pre-freeze': preFreeze,
};

function notFound(method, path, res) {
  send(res, 404, { 'content-type': 'application/json' }, Buffer.from(JSON.stringify({
    errorMessage: 'no route for ' + method + ' ' + path,
    errorType: 'NotFound',
  }), 'utf8'));
}

function onRequest(req, res) {
  res.sendDate = false;
  let endpoint;
  // An HTTP-trigger request: the header decides, whatever the client's method and path (it may
  // well be POST /invoke).
  if (req.headers['x-fc-control-path'] === '/http-invoke') {
    endpoint = httpInvoke;
  } else {
    const url = req.url;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = ROUTES[req.method + ' ' + path];
    if (route === undefined) {
      req.resume();
      notFound(req.method, path, res);
      return;
    }
    endpoint = function (r, body, response) { route(r.headers, body, response); };
  }
  const chunks = [];
  req.on('data', function (c) { chunks.push(c); });
  req.on('end', function () {
    const body = chunks.length === 0 ? EMPTY : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    endpoint(req, body, res);
  });
}

// --------------------------------------------------------------------------------------------
// HTTP functions: FC's `exports.handler = (req, resp, context)` shape (fc-runtime-contract.md
// 4.2 and 12).  fcd sends an HTTP-trigger request as the client's own request (any method and
// path) marked "x-fc-control-path: /http-invoke", with "x-fc-base-path" naming the URL prefix
// before the function's own path when it was routed by a /proxy/ URL.  The handler answers
// through resp.send() (once); the response goes back with its status, its headers (repeated
// ones as separate lines) and "x-fc-status: 200".  A throw or a rejected promise fails the
// request as unhandled, exactly as for events; a handler that never sends runs until fcd's
// timeout.
// --------------------------------------------------------------------------------------------

// Request headers that describe the fcd->instance hop, not the client's request.  x-fc-* are
// fcd's (and carry the role's credentials) and are never shown to the handler either.
const HOP_HEADERS = { connection: 1, 'keep-alive': 1, 'transfer-encoding': 1 };
// Response headers a handler may not set: fcd's own x-fc-* (x-fc-status must be ours) and the
// ones that frame this hop's response (the length is computed here).
const RESERVED_RESPONSE = { 'content-length': 1, connection: 1, 'keep-alive': 1, 'transfer-encoding': 1 };
// Headers of which FC keeps the first value only (Node 10's documented list, which FC's
// runtime follows); set-cookie is an array; any other repeated header is joined with ', '.
const SINGLE_VALUE_HEADERS = {
  age: 1, authorization: 1, 'content-length': 1, 'content-type': 1, etag: 1, expires: 1, from: 1,
  host: 1, 'if-modified-since': 1, 'if-unmodified-since': 1, 'last-modified': 1, location: 1,
  'max-forwards': 1, 'proxy-authorization': 1, referer: 1, 'retry-after': 1, 'user-agent': 1,
};
const MAX_STREAM_BODY = 128 * 1024 * 1024;
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE_RE = /[^\t\x20-\x7e\x80-\xff]/;

// Own data properties only: a header or query named "__proto__" must stay data.
function setOwn(obj, key, value) {
  Object.defineProperty(obj, key, { value: value, writable: true, enumerable: true, configurable: true });
}

function hasOwn(obj, key) {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

// Percent-decoding that never throws: a malformed sequence leaves the path as it was sent.
function decodePath(p) {
  if (p.indexOf('%') === -1) return p;
  try {
    return decodeURIComponent(p);
  } catch (e) {
    return p;
  }
}

function stripBasePath(p, base) {
  if (base) {
    base = base.replace(/\/+$/, '');
    if (p === base || (p.startsWith(base) && p.charAt(base.length) === '/')) p = p.slice(base.length);
  }
  return p || '/';
}

let querystringModule = null;
let httpModule = null;
let streamModule = null;
let eventsModule = null;

function parseQueries(query) {
  const out = {};
  if (!query) return out;
  if (querystringModule === null) querystringModule = require('querystring');
  const parsed = querystringModule.parse(query, '&', '=', { maxKeys: 0 });
  for (const k of Object.keys(parsed)) setOwn(out, k, parsed[k]);
  return out;
}

// FC's req: an http.IncomingMessage (frameworks check for one) that emits the body as a
// readable stream, with FC's fields on top.  Its socket is a stand-in showing the client's
// address: the real socket is fcd's connection, which user code must not close or read.
function makeHttpRequest(inReq, body) {
  if (httpModule === null) httpModule = require('http');
  if (eventsModule === null) eventsModule = require('events');
  const raw = inReq.rawHeaders;
  const headers = {};
  const rawHeaders = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const key = raw[i].toLowerCase();
    if (key.startsWith('x-fc-') || HOP_HEADERS[key] === 1) continue;
    const v = raw[i + 1];
    rawHeaders.push(raw[i], v);
    if (key === 'set-cookie') {
      if (hasOwn(headers, key)) headers[key].push(v);
      else setOwn(headers, key, [v]);
    } else if (!hasOwn(headers, key)) {
      setOwn(headers, key, v);
    } else if (SINGLE_VALUE_HEADERS[key] !== 1) {
      headers[key] = headers[key] + ', ' + v;
    }
  }
  const target = inReq.url;
  const q = target.indexOf('?');
  let rawPath = q === -1 ? target : target.slice(0, q);
  const abs = /^https?:\/\/[^/]*/.exec(rawPath);
  if (abs) rawPath = rawPath.slice(abs[0].length) || '/';
  const base = inReq.headers['x-fc-base-path'];
  const forwarded = inReq.headers['x-forwarded-for'];
  const clientIP = forwarded ? forwarded.split(',').pop().trim() : '';

  const socket = new eventsModule.EventEmitter();
  socket.remoteAddress = clientIP;
  socket.remotePort = 0;
  socket.encrypted = false;
  socket.readable = false;
  socket.writable = false;
  socket.destroyed = true;
  socket.destroy = function () { return socket; };
  socket.end = function () { return socket; };
  socket.setTimeout = function () { return socket; };
  socket.setNoDelay = function () { return socket; };
  socket.setKeepAlive = function () { return socket; };
  socket.address = function () { return { port: 9000, family: 'IPv4', address: '0.0.0.0' }; };

  const req = new httpModule.IncomingMessage(socket);
  req.httpVersion = '1.1';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  req.complete = true;
  req.method = inReq.method;
  req.url = target;
  req.headers = headers;
  req.rawHeaders = rawHeaders;
  req.path = stripBasePath(decodePath(rawPath), base === undefined ? '' : decodePath(base));
  req.queries = parseQueries(q === -1 ? '' : target.slice(q + 1));
  req.clientIP = clientIP;
  req.ip = clientIP;
  req.body = body;
  req.getHeader = function (k) {
    const key = String(k).toLowerCase();
    return hasOwn(this.headers, key) ? this.headers[key] : undefined;
  };
  // The body, whole, to whoever reads the stream ('data'/'end', pipe, async iteration).
  req._read = function () {
    this._readableState.readingMore = false;
    if (body.length > 0) this.push(body);
    this.push(null);
  };
  return req;
}

function checkHeaderName(name) {
  if (typeof name !== 'string') throw new TypeError('headerKey should be a `string`');
  if (!TOKEN_RE.test(name)) throw new TypeError('Invalid header name: ' + JSON.stringify(name));
}

function checkHeaderValues(name, value) {
  const values = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(values) || values.some(function (v) { return typeof v !== 'string'; })) {
    throw new TypeError('headerValue should be a `string` or an array of `string`');
  }
  for (const v of values) {
    // CR/LF would let a value forge more headers or a body.
    if (BAD_VALUE_RE.test(v)) throw new TypeError('Invalid character in header ' + JSON.stringify(name));
  }
  return values.slice();
}

// FC's resp.  Header names are kept as given (as FC does, 'A' and 'a' are different keys here;
// they are merged into one header when sent).
function HttpResponse(run) {
  this._run = run;
  this._sent = false;
  this._status = 200;
  this._headers = new Map();
}

HttpResponse.prototype.setStatusCode = function (statusCode) {
  if (this._sent) throw new Error('can not set statusCode after it is sent');
  if (!Number.isInteger(statusCode)) throw new TypeError('statusCode should be an `integer`');
  if (statusCode < 200 || statusCode > 999) {
    throw new RangeError('statusCode should be between 200 and 999, got ' + statusCode);
  }
  this._status = statusCode;
};

HttpResponse.prototype.setHeader = function (headerKey, headerValue) {
  if (this._sent) throw new Error('can not set headers after they are sent');
  checkHeaderName(headerKey);
  this._headers.set(headerKey, checkHeaderValues(headerKey, headerValue));
  return this;
};

HttpResponse.prototype.getHeader = function (headerKey) {
  const v = this._headers.get(headerKey);
  if (v === undefined) return undefined;
  return v.length === 1 ? v[0] : v.slice();
};

HttpResponse.prototype.hasHeader = function (headerKey) {
  return this._headers.has(headerKey);
};

HttpResponse.prototype.deleteHeader = function (headerKey) {
  if (this._sent) throw new Error('can not set headers after they are sent');
  if (typeof headerKey !== 'string') throw new TypeError('headerKey should be a `string`');
  this._headers.delete(headerKey);
};

function isReadable(x) {
  if (streamModule === null) streamModule = require('stream');
  return x instanceof streamModule.Readable ||
    (x !== null && typeof x === 'object' && typeof x.pipe === 'function' && typeof x.on === 'function');
}

HttpResponse.prototype.send = function (body) {
  if (this._sent) throw new Error('can not send multi times');
  let buf = null;
  if (typeof body === 'string') buf = Buffer.from(body, 'utf8');
  else if (Buffer.isBuffer(body)) buf = body;
  else if (body instanceof Uint8Array) buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  else if (!isReadable(body)) {
    throw new TypeError('body should be a `Buffer` or a `string` or a `stream.Readable`');
  }
  this._sent = true;
  const status = this._status;
  const headers = new Map(this._headers);
  const run = this._run;
  if (buf !== null) {
    run.succeedHttp(status, headers, buf);
    return;
  }
  // A stream is read whole before anything is sent, up to FC's 128 MB.
  const chunks = [];
  let size = 0;
  let over = false;
  body.on('data', function (chunk) {
    if (run.done || over) return;
    if (typeof chunk === 'string') chunk = Buffer.from(chunk, 'utf8');
    else if (!(chunk instanceof Uint8Array)) {
      over = true;
      run.unhandled(new TypeError('the response stream produced a chunk that is not a Buffer or a string'));
      if (typeof body.destroy === 'function') body.destroy();
      return;
    }
    size += chunk.length;
    if (size > MAX_STREAM_BODY) {
      over = true;
      run.unhandled(new RangeError('the response stream is larger than ' + MAX_STREAM_BODY + ' bytes'));
      if (typeof body.destroy === 'function') body.destroy();
      return;
    }
    chunks.push(chunk);
  });
  body.on('end', function () {
    if (over) return;
    run.succeedHttp(status, headers, Buffer.concat(chunks, size));
  });
  body.on('error', function (err) {
    if (over) return;
    over = true;
    run.unhandled(err === undefined || err === null ? new Error('the response stream failed') : err);
  });
  if (typeof body.resume === 'function') body.resume();
};

// The handler's response: its status and headers (repeated ones as separate lines), the body,
// and "x-fc-status: 200".  Names differing only in case are one header on the wire.
Run.prototype.succeedHttp = function (status, headers, body) {
  if (this.done) return;
  const merged = new Map();
  headers.forEach(function (values, name) {
    const lower = name.toLowerCase();
    if (lower.startsWith('x-fc-') || RESERVED_RESPONSE[lower] === 1) return;
    const prev = merged.get(lower);
    if (prev === undefined) merged.set(lower, { name: name, values: values.slice() });
    else prev.values = prev.values.concat(values);
  });
  this.end('');
  const res = this.res;
  merged.forEach(function (h) {
    res.setHeader(h.name, h.values.length === 1 ? h.values[0] : h.values);
  });
  res.setHeader('x-fc-status', '200');
  // A 204 or 304 has no body and no length (Node then sends none); HEAD gets the length only.
  if (status !== 204 && status !== 304) res.setHeader('content-length', String(body.length));
  res.writeHead(status);
  res.end(body);
};

function httpInvoke(inReq, body, res) {
  const h = inReq.headers;
  const handler = h['x-fc-function-handler'] || DEFAULT_HANDLER;
  const run = new Run('Invoke', h['x-fc-request-id'] || '', res, false);
  run.start();
  let fn;
  let req;
  try {
    fn = loadHandler(handler);
    req = makeHttpRequest(inReq, body);
  } catch (e) {
    run.unhandled(e);
    return;
  }
  let ret;
  try {
    ret = fn(req, new HttpResponse(run), makeContext(h, handler));
  } catch (e) {
    run.unhandled(e);
    return;
  }
  // The response comes only through resp.send(); a returned promise can only fail the request.
  if (ret !== null && typeof ret === 'object' && typeof ret.then === 'function') {
    ret.then(undefined, function (e) {
      run.unhandled(e === undefined || e === null ? new Error('Promise rejected with ' + e) : e);
    });
  }
}

// --------------------------------------------------------------------------------------------
// Server.
// --------------------------------------------------------------------------------------------

let httpServer = null;

function getHttpServer() {
  if (httpServer === null) {
    const http = require('http');
    // FC keeps connections open indefinitely and requests may run for a day: no idle,
    // header or request timeouts (2.1).
    httpServer = http.createServer({
      keepAliveTimeout: 0,
      headersTimeout: 0,
      requestTimeout: 0,
      maxHeaderSize: 64 * 1024,
    }, onRequest);
    httpServer.keepAliveTimeout = 0;
    httpServer.timeout = 0;
  }
  return httpServer;
}

function onConnection(socket) {
  socket.setNoDelay(true);
  getHttpServer().emit('connection', socket);
}

function onExit() {
  // process.exit() (or SIGTERM) while user code runs: close the markers of what was in
  // flight, so the log still shows where each request ended.  The process exits regardless.
  for (const run of Array.from(inFlight)) {
    run.end(', Error: Unhandled function error');
  }
}

function main() {
  const port = parseInt(PORT_STR, 10);
  if (!(port >= 0 && port < 65536) || String(port) !== PORT_STR.trim()) {
    writeErr('fcd nodejs bootstrap: invalid port ' + JSON.stringify(PORT_STR) + '\n');
    process.exitCode = 1;
    return;
  }
  scrubEnv();
  const listener = net.createServer(onConnection);
  let listening = false;
  listener.on('listening', function () { listening = true; });
  listener.on('error', function (e) {
    if (!listening) {
      writeErr('fcd nodejs bootstrap: cannot listen on port ' + port + ': ' + e.message + '\n');
      process.exit(1);
    }
    // An accept failure (EMFILE...): libuv keeps listening; say so and carry on.
    writeErr('fcd nodejs bootstrap: accept failed: ' + e.message + '\n');
  });
  // No host: Node then binds [::] dual-stack (libuv clears IPV6_V6ONLY), falling back to
  // 0.0.0.0 where IPv6 is off, i.e. every address as FC requires (2.1).  Naming '0.0.0.0'
  // would make Node load `dns` and resolve it first, ~2 ms of start-up.
  listener.listen({ port: port, backlog: 1024 });
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  process.on('exit', onExit);
  // As FC's runtimes: SIGTERM (fcd's stop, a timeout) exits 128+15.
  process.on('SIGTERM', function () {
    writeErr(new Date().toISOString() + ' fcd-nodejs-runtime received SIGTERM\n');
    process.exit(143);
  });
  // The rest of the set-up overlaps fcd's first connection.
  setImmediate(function () {
    getHttpServer();
    return process.stdout;
  });
}

main();
