"""The `http-py` test fixture: a Python `wasi:http/proxy@0.2.0` component for fcd's `wasm` runtime.

Built by ``scripts/wasm-fixtures`` with componentize-py into ``http-py.wasm``; it uses only the
bindings componentize-py generates for the ``wasi:http/proxy@0.2.0`` world (no Spin API), so the
same file runs in ``wasmtime serve -Scli`` and in fcd.

Which behaviour a request asks for (the "op") and its arguments:

* an event invocation reaches a component as ``POST /invoke`` (with ``x-fc-control-path: /invoke``
  when the host sends that header); its body is a JSON object ``{"op": "<op>", ...arguments}``
  (a body that is not a JSON object means ``echo``);
* any other request (an HTTP trigger, ``wasmtime serve``) names the op in the first segment of
  its path — after the trigger's base path when ``x-fc-base-path`` gives one — and passes the
  arguments in the query: ``GET /alloc?mb=256``, ``/env?name=A&name=B``. A path whose first
  segment is no op means ``echo``.

Every op but ``fail`` answers 200 with a JSON body, unless the arguments ``status`` (an HTTP status)
and ``h-<name>=<value>`` (query) / ``headers`` (event, an object) ask for another status or extra
response headers.

Ops:

``echo``      {"method", "path", "query", "headers" (every request header, lower-case names,
              values joined with ", "), "body" (the request body as text), "op"}
``log``       prints ``fixture-stdout <text> <i>`` to stdout and ``fixture-stderr <text> <i>`` to
              stderr, ``lines`` times each (default 2); answers {"logged": lines}
``env``       {name: value or null} for each ``name`` (query, repeatable) / ``names`` (event list);
              without names, the whole environment
``busy``      ``while True: pass`` — never answers
``sleep``     ``time.sleep(seconds)``, then {"slept": seconds}
``alloc``     ``bytearray(mb MB)`` — {"allocated_mb": mb}; a MemoryError answers 500
              {"errorType": "MemoryError", "errorMessage": ...}
``state``     a module-level counter incremented per call: {"counter": n}. A fresh instance per
              call always answers 1.
``fetch``     an outbound ``GET url`` through wasi:http/outgoing-handler:
              {"ok": true, "status": n, "body": first 200 characters} or {"ok": false, "error": ...}
``readfile``  reads ``path`` (default ``/code/data.txt``) and then tries to create
              ``/code/written.txt``: {"content": text or null, "read_error": ..., "write": "ok" or
              the error}
``fail``      answers 500 {"errorType": "FixtureError", "errorMessage": "fixture failure: <text>"}
``raise``     raises RuntimeError out of the handler (the component traps)
"""

from __future__ import annotations

import json
import os
import sys
import time
from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler, types

# The per-instance counter of ``state``: it starts at 0 in every fresh instance.
COUNTER = 0

# wasi:io output streams accept at most 4096 bytes per blocking write.
CHUNK = 4096


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: types.IncomingRequest, response_out: types.ResponseOutparam) -> None:
        try:
            status, headers, body = dispatch(request)
        except MemoryError as e:
            status, headers, body = error(500, "MemoryError", f"MemoryError: {e!r}")
        respond(response_out, status, headers, body)


# ---------------------------------------------------------------------------------------------
# Request parsing and response writing
# ---------------------------------------------------------------------------------------------


def method_name(method: types.Method) -> str:
    if isinstance(method, types.Method_Other):
        return method.value
    return type(method).__name__.split("_", 1)[1].upper()


def read_body(request: types.IncomingRequest) -> bytes:
    body = request.consume()
    stream = body.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(65536))
        except Err:
            break  # closed: the whole body was read
    stream.__exit__(None, None, None)
    types.IncomingBody.finish(body)
    return b"".join(chunks)


def respond(out: types.ResponseOutparam, status: int, headers: dict, body: bytes) -> None:
    fields = types.Fields.from_list(
        [("content-type", b"application/json")] + [(k, v.encode()) for k, v in headers.items()]
    )
    response = types.OutgoingResponse(fields)
    response.set_status_code(status)
    outgoing = response.body()
    types.ResponseOutparam.set(out, Ok(response))
    with outgoing.write() as stream:
        for i in range(0, len(body), CHUNK):
            stream.blocking_write_and_flush(body[i : i + CHUNK])
    types.OutgoingBody.finish(outgoing, None)


def error(status: int, kind: str, message: str) -> tuple[int, dict, bytes]:
    return status, {}, json.dumps({"errorType": kind, "errorMessage": message}).encode()


def dispatch(request: types.IncomingRequest) -> tuple[int, dict, bytes]:
    method = method_name(request.method())
    target = request.path_with_query() or "/"
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    headers: dict[str, str] = {}
    for name, value in request.headers().entries():
        name = name.lower()
        text = value.decode("utf-8", "replace")
        headers[name] = headers[name] + ", " + text if name in headers else text
    body = read_body(request)

    control = headers.get("x-fc-control-path")
    if control == "/invoke" or (control is None and method == "POST" and parts.path == "/invoke"):
        try:
            args = json.loads(body)
        except ValueError:
            args = None
        if not isinstance(args, dict):
            args = {}
        op = str(args.get("op", "echo"))
        extra = {str(k): str(v) for k, v in (args.get("headers") or {}).items()}
    else:
        args = {k: v[-1] for k, v in query.items()}
        args["name"] = query.get("name", [])
        # An HTTP trigger's request may carry the trigger's base path (x-fc-base-path) in front
        # of the function's own path; the op is the first segment after it.
        path = parts.path
        base = headers.get("x-fc-base-path", "").rstrip("/")
        if base and path.startswith(base):
            path = path[len(base) :]
        op = path.strip("/").split("/", 1)[0]
        extra = {k[2:]: v[-1] for k, v in query.items() if k.startswith("h-")}
    if op not in OPS:
        op = "echo"
    status = int(args.get("status") or 200)

    ctx = {"method": method, "path": parts.path, "query": parts.query, "headers": headers, "body": body}
    result = OPS[op](args, ctx)
    if isinstance(result, tuple):
        return result
    return status, extra, json.dumps(result).encode()


# ---------------------------------------------------------------------------------------------
# The ops
# ---------------------------------------------------------------------------------------------


def op_echo(args, ctx):
    return {
        "op": "echo",
        "method": ctx["method"],
        "path": ctx["path"],
        "query": ctx["query"],
        "headers": ctx["headers"],
        "body": ctx["body"].decode("utf-8", "replace"),
    }


def op_log(args, ctx):
    text = str(args.get("text", ""))
    lines = int(args.get("lines", 2))
    for i in range(lines):
        print(f"fixture-stdout {text} {i}", flush=True)
        print(f"fixture-stderr {text} {i}", file=sys.stderr, flush=True)
    return {"logged": lines}


def op_env(args, ctx):
    names = args.get("names") or args.get("name") or []
    if isinstance(names, str):
        names = [names]
    if not names:
        return dict(os.environ)
    return {n: os.environ.get(n) for n in names}


def op_busy(args, ctx):
    while True:
        pass


def op_sleep(args, ctx):
    seconds = float(args.get("seconds", 1))
    time.sleep(seconds)
    return {"slept": seconds}


def op_alloc(args, ctx):
    mb = int(args.get("mb", 1))
    try:
        block = bytearray(mb * 1024 * 1024)
    except MemoryError as e:
        return error(500, "MemoryError", f"MemoryError allocating {mb} MB: {e!r}")
    # Touch every page so the memory is really used.
    for i in range(0, len(block), 65536):
        block[i] = 1
    return {"allocated_mb": mb}


def op_state(args, ctx):
    global COUNTER
    COUNTER += 1
    return {"counter": COUNTER}


def op_fetch(args, ctx):
    url = str(args.get("url", ""))
    try:
        status, body = http_get(url)
    except Exception as e:  # the error is the answer: the test reads it
        return {"ok": False, "url": url, "error": describe(e)}
    return {"ok": True, "url": url, "status": status, "body": body[:200].decode("utf-8", "replace")}


def op_readfile(args, ctx):
    path = str(args.get("path", "/code/data.txt"))
    out = {"path": path, "content": None, "read_error": None}
    try:
        with open(path, "r") as f:
            out["content"] = f.read()
    except Exception as e:
        out["read_error"] = describe(e)
    try:
        with open("/code/written.txt", "w") as f:
            f.write("written by the fixture")
        out["write"] = "ok"
    except Exception as e:
        out["write"] = describe(e)
    return out


def op_fail(args, ctx):
    return error(500, "FixtureError", "fixture failure: " + str(args.get("text", "")))


def op_raise(args, ctx):
    raise RuntimeError("fixture raised: " + str(args.get("text", "")))


OPS = {
    "echo": op_echo,
    "log": op_log,
    "env": op_env,
    "busy": op_busy,
    "sleep": op_sleep,
    "alloc": op_alloc,
    "state": op_state,
    "fetch": op_fetch,
    "readfile": op_readfile,
    "fail": op_fail,
    "raise": op_raise,
}


# ---------------------------------------------------------------------------------------------
# Outbound HTTP
# ---------------------------------------------------------------------------------------------


def describe(e: BaseException) -> str:
    if isinstance(e, Err):
        return f"Err({e.value!r})"
    return f"{type(e).__name__}: {e}"


def http_get(url: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    request = types.OutgoingRequest(types.Fields())
    request.set_method(types.Method_Get())
    request.set_scheme(types.Scheme_Https() if parts.scheme == "https" else types.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + ("?" + parts.query if parts.query else ""))
    outgoing = request.body()
    types.OutgoingBody.finish(outgoing, None)
    future = outgoing_handler.handle(request, None)
    while True:
        got = future.get()
        if got is not None:
            break
        with future.subscribe() as pollable:
            pollable.block()
    if isinstance(got, Err):
        raise RuntimeError("response already taken")
    inner = got.value
    if isinstance(inner, Err):
        raise inner
    response = inner.value
    status = response.status()
    body = response.consume()
    stream = body.stream()
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(65536))
        except Err:
            break
    stream.__exit__(None, None, None)
    return status, b"".join(chunks)
