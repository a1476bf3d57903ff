// The console's API client: every call signed in the page (see sign.js) with credentials held
// only by this module's caller, in memory. Errors become ApiError with FC's code and message.

import { path, signRequest, toBytes, wireQuery } from "./sign.js";

export const PREFIX = "/2021-04-06";

/** Pages of 100 a list follows (FC's nextToken) before it stops and says it is cut short. */
export const MAX_LIST_PAGES = 50;

/** An API error as FC renders it: `code` is FC's ErrorCode. */
export class ApiError extends Error {
  constructor(code, message, status, requestId) {
    super(message);
    this.code = code;
    this.status = status;
    this.requestId = requestId;
  }
  toString() {
    return `${this.code}: ${this.message}`;
  }
}

const decoder = new TextDecoder();

/** A signing client for one identity. `base` is the origin ("" in the page), `host` what is signed. */
export class Client {
  constructor(credentials, { base = "", host = globalThis.location ? location.host : "" } = {}) {
    this.credentials = Object.freeze({ ...credentials });
    this.base = base;
    this.host = host;
  }

  get accessKeyId() {
    return this.credentials.accessKeyId;
  }

  /**
   * One signed call. `opts`: {query, json (an object sent as JSON), body (raw bytes/string),
   * headers, action}. Resolves to {status, headers (a Headers), bytes, text(), json()} for a
   * status below 400; rejects with ApiError otherwise (and on network failure).
   */
  async call(method, apiPath, opts = {}) {
    const headers = { ...(opts.headers || {}) };
    let body;
    if (opts.json !== undefined) {
      body = toBytes(JSON.stringify(opts.json));
      headers["content-type"] = "application/json; charset=utf-8";
    } else if (opts.body !== undefined) {
      body = toBytes(opts.body);
    }
    const fullPath = PREFIX + apiPath;
    const signed = await signRequest(this.credentials, {
      method,
      path: fullPath,
      query: opts.query,
      host: this.host,
      headers: { accept: "application/json", ...headers },
      body,
      action: opts.action,
    });
    const send = { ...signed.headers };
    delete send.host; // the browser sends the Host it was signed with
    const q = wireQuery(opts.query);
    let resp;
    try {
      resp = await fetch(this.base + fullPath + (q ? "?" + q : ""), {
        method,
        headers: send,
        body: body && body.length ? body : undefined,
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch (e) {
      throw new ApiError("NetworkError", String(e && e.message ? e.message : e), 0, "");
    }
    const bytes = new Uint8Array(await resp.arrayBuffer());
    const requestId = resp.headers.get("x-fc-request-id") || "";
    if (resp.status >= 400) {
      let parsed = null;
      try {
        parsed = JSON.parse(decoder.decode(bytes));
      } catch {
        parsed = null;
      }
      const code = (parsed && (parsed.ErrorCode || parsed.Code)) || `HTTP${resp.status}`;
      const message =
        (parsed && (parsed.ErrorMessage || parsed.Message)) ||
        decoder.decode(bytes).trim() ||
        resp.statusText;
      throw new ApiError(code, message, resp.status, requestId);
    }
    return {
      status: resp.status,
      statusText: resp.statusText,
      headers: resp.headers,
      bytes,
      requestId,
      text: () => decoder.decode(bytes),
      json: () => (bytes.length ? JSON.parse(decoder.decode(bytes)) : {}),
    };
  }

  async get(apiPath, query, action) {
    return (await this.call("GET", apiPath, { query, action })).json();
  }

  /**
   * Every item of a paged list, following FC's `nextToken` page by page: `{[key]: items}`, with
   * `truncated: true` when [MAX_LIST_PAGES] pages did not reach the end.
   */
  async listAll(apiPath, key, query, action) {
    const items = [];
    let nextToken;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const body = await this.get(apiPath, { limit: 100, ...query, nextToken }, action);
      items.push(...(body[key] || []));
      nextToken = body.nextToken;
      if (!nextToken) return { [key]: items, truncated: false };
    }
    return { [key]: items, truncated: true };
  }

  // --- FC operations the console uses (paths as in the 2021-04-06 SDK) ---

  /** One page of services (the sign-in check asks for one). */
  listServices(query) {
    return this.get("/services", { limit: 100, ...query }, "ListServices");
  }
  allServices() {
    return this.listAll("/services", "services", undefined, "ListServices");
  }
  createService(serviceName, description) {
    return this.call("POST", "/services", {
      json: { description, serviceName },
      action: "CreateService",
    }).then((r) => r.json());
  }
  getService(s) {
    return this.get(path("services", s), undefined, "GetService");
  }
  listFunctions(s) {
    return this.listAll(path("services", s, "functions"), "functions", undefined, "ListFunctions");
  }
  getFunction(s, f, qualifier) {
    return this.get(path("services", s, "functions", f), { qualifier }, "GetFunction");
  }
  createFunction(s, spec) {
    return this.call("POST", path("services", s, "functions"), {
      json: spec,
      action: "CreateFunction",
    }).then((r) => r.json());
  }
  updateFunction(s, f, spec) {
    return this.call("PUT", path("services", s, "functions", f), {
      json: spec,
      action: "UpdateFunction",
    }).then((r) => r.json());
  }
  getFunctionCode(s, f, qualifier) {
    return this.get(path("services", s, "functions", f, "code"), { qualifier }, "GetFunctionCode");
  }
  listVersions(s) {
    return this.listAll(path("services", s, "versions"), "versions", undefined, "ListServiceVersions");
  }
  publishVersion(s, description) {
    return this.call("POST", path("services", s, "versions"), {
      json: { description },
      action: "PublishServiceVersion",
    }).then((r) => r.json());
  }
  listAliases(s) {
    return this.listAll(path("services", s, "aliases"), "aliases", undefined, "ListAliases");
  }
  createAlias(s, alias) {
    return this.call("POST", path("services", s, "aliases"), {
      json: alias,
      action: "CreateAlias",
    }).then((r) => r.json());
  }
  listTriggers(s, f) {
    return this.listAll(path("services", s, "functions", f, "triggers"), "triggers", undefined, "ListTriggers");
  }
  getAsyncConfig(s, f, qualifier) {
    return this.get(
      path("services", s, "functions", f, "async-invoke-config"),
      { qualifier },
      "GetFunctionAsyncInvokeConfig",
    );
  }
  putAsyncConfig(s, f, qualifier, config) {
    return this.call("PUT", path("services", s, "functions", f, "async-invoke-config"), {
      query: { qualifier },
      json: config,
      action: "PutFunctionAsyncInvokeConfig",
    }).then((r) => r.json());
  }
  /** InvokeFunction: the raw response (status, headers, bytes); `opts` {qualifier, async, taskId}. */
  invoke(s, f, payload, { qualifier, async: isAsync, taskId } = {}) {
    const headers = isAsync
      ? {
          "x-fc-invocation-type": "Async",
          "x-fc-stateful-async-invocation-enable": "true",
          "x-fc-stateful-async-invocation-id": taskId,
        }
      : { "x-fc-invocation-type": "Sync", "x-fc-log-type": "Tail" };
    return this.call("POST", path("services", s, "functions", f, "invocations"), {
      query: { qualifier },
      body: payload,
      headers,
      action: "InvokeFunction",
    });
  }
  listTasks(s, f, query) {
    return this.get(
      path("services", s, "functions", f, "stateful-async-invocations"),
      { limit: 100, ...query },
      "ListStatefulAsyncInvocations",
    );
  }
  getTask(s, f, id, qualifier) {
    return this.get(
      path("services", s, "functions", f, "stateful-async-invocations", id),
      { qualifier },
      "GetStatefulAsyncInvocation",
    );
  }
  stopTask(s, f, id, qualifier) {
    return this.call("PUT", path("services", s, "functions", f, "stateful-async-invocations", id), {
      query: { qualifier },
      action: "StopStatefulAsyncInvocation",
    });
  }
  listInstances(s, f, qualifier) {
    return this.get(path("services", s, "functions", f, "instances"), { qualifier, limit: 100 }, "ListInstances");
  }
  /** fcd's logs API: {records, truncated}. */
  logs(s, f, query) {
    return this.get(path("services", s, "functions", f, "logs"), query, "GetFunctionLogs");
  }
  /** fcd's per-function metrics: {periodSeconds, points}. */
  metrics(s, f) {
    return this.get(path("services", s, "functions", f, "metrics"), undefined, "GetFunctionMetrics");
  }
}
