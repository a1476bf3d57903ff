// The console page: sign-in, hash routing and the services / service / function pages.
// Credentials live only in `client` (this module's memory): never in storage, a cookie or a
// URL; a reload signs out. What an identity may do is the server's decision: every refusal
// is shown as FC's `<ErrorCode>: <ErrorMessage>`.

import { ApiError, Client } from "./api.js";
import { base64, zipStore } from "./zip.js";
import { lineChart } from "./charts.js";

/** The signed-in client, or null. */
let client = null;
/** Timers and other teardown of the page on screen, run when it changes. */
let cleanups = [];

const $ = (sel, root = document) => root.querySelector(sel);

// ---------------------------------------------------------------- DOM helpers

/** An element: `h("a", {href: "#/"}, "text", child)`; attrs starting with "on" are listeners. */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** An `.error` element for an error: FC's code in data-code, `<Code>: <Message>` as text. */
function errorBox(err) {
  const code = err instanceof ApiError ? err.code : "ConsoleError";
  const message = err instanceof ApiError ? err.message : String(err && err.message ? err.message : err);
  return h("p", { class: "error", role: "alert", "data-code": code }, `${code}: ${message}`);
}

/** Shows `err` in `slot` (replacing what was there); `null` clears it. */
function showError(slot, err) {
  slot.replaceChildren(...(err ? [errorBox(err)] : []));
}

function notice(slot, text) {
  slot.replaceChildren(h("p", { class: "notice", role: "status" }, text));
}

/** A table with a header row; `rows` are <tr>s. */
function table(id, headers, rows, empty = "None yet.") {
  const body = h("tbody", {}, rows);
  if (!rows.length) body.append(h("tr", { class: "empty" }, h("td", { colspan: headers.length }, empty)));
  return h("table", { id, class: "grid" }, h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))), body);
}

/** A note under a list that stopped before its end (`ApiClient.listAll`), else nothing. */
function cutShort(id, truncated, count) {
  return truncated ? [h("p", { id: `${id}-truncated`, class: "muted" }, `Showing the first ${count}; narrow the list with the API or the CLI to see the rest.`)] : [];
}

function field(label, input, hint) {
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hint ? h("small", { class: "muted" }, hint) : null);
}

function dl(id, pairs) {
  return h(
    "dl",
    { id, class: "props" },
    pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { key: k } }, v === undefined || v === null || v === "" ? "—" : v)]),
  );
}

function fmtTime(v) {
  if (v === undefined || v === null || v === "") return "—";
  const d = typeof v === "number" ? new Date(v) : new Date(v);
  return isNaN(d) ? String(v) : d.toLocaleString();
}

function fmtBytes(n) {
  if (typeof n !== "number") return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function json(v) {
  return JSON.stringify(v, null, 2);
}

/** Runs `fn` with the submit button disabled, showing its error in `slot`. */
async function busy(button, slot, fn) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  if (slot) showError(slot, null);
  try {
    return await fn();
  } catch (e) {
    if (slot) showError(slot, e);
    else console.error(e);
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

/** `setInterval` for the page on screen: cleared when the page or tab changes. */
function every(ms, fn) {
  const id = setInterval(fn, ms);
  cleanups.push(() => clearInterval(id));
}

function teardown() {
  for (const c of cleanups.splice(0)) c();
}

// ---------------------------------------------------------------- code packages

const RUNTIMES = [
  "python3.10",
  "python3.9",
  "python3",
  "nodejs20",
  "nodejs18",
  "nodejs16",
  "nodejs14",
  "nodejs12",
  "custom.debian10",
  "custom",
];

/** The file a single-file handler is zipped as, by runtime. */
function sourceName(runtime) {
  if (runtime.startsWith("nodejs")) return "index.js";
  if (runtime.startsWith("custom")) return "bootstrap";
  return "index.py";
}

function exampleSource(runtime) {
  if (runtime.startsWith("nodejs")) {
    return [
      "exports.handler = (event, context, callback) => {",
      "  console.log('event: ' + event.toString());",
      "  callback(null, 'hello ' + event.toString());",
      "};",
      "",
    ].join("\n");
  }
  return [
    "def handler(event, context):",
    "    print('event:', event)",
    "    return b'hello ' + event",
    "",
  ].join("\n");
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(new Uint8Array(r.result));
    r.onerror = () => reject(r.error || new Error("the file could not be read"));
    r.readAsArrayBuffer(file);
  });
}

/**
 * The `code` object of CreateFunction/UpdateFunction from a zip file input or a source
 * textarea (zipped here as `name`); throws when neither is given.
 */
async function codeFrom(zipInput, sourceArea, name) {
  const file = zipInput.files && zipInput.files[0];
  if (file) return { zipFile: base64(await readFile(file)) };
  const source = sourceArea.value;
  if (source.trim()) {
    if (!name) throw new Error("give the file name the source is saved as");
    const executable = name === "bootstrap";
    const zip = zipStore([{ name, data: source, executable }]);
    return { zipFile: base64(zip) };
  }
  throw new Error("choose a .zip file or write the handler's source");
}

// ---------------------------------------------------------------- routing

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== "services") return { page: "services" };
  if (parts.length === 1) return { page: "services" };
  if (parts.length >= 4 && parts[2] === "functions")
    return { page: "function", service: parts[1], fn: parts[3], tab: parts[4] || "config" };
  return { page: "service", service: parts[1] };
}

const enc = encodeURIComponent;
const serviceHref = (s) => `#/services/${enc(s)}`;
const functionHref = (s, f, tab) => `#/services/${enc(s)}/functions/${enc(f)}${tab ? "/" + tab : ""}`;

function crumbs(items) {
  const nav = $("#crumbs");
  nav.replaceChildren(
    h(
      "ol",
      {},
      items.map(([label, href], i) =>
        h("li", {}, i === items.length - 1 ? h("span", { "aria-current": "page" }, label) : h("a", { href }, label)),
      ),
    ),
  );
}

/** The `<main>` of a page, emptied and tagged. */
function page(name, title) {
  const main = $("#page");
  main.dataset.page = name;
  main.replaceChildren();
  document.title = `${title} · fcd console`;
  return main;
}

let lastRoute = "";

async function route() {
  if (!client) return;
  const r = parseHash();
  const key = `${r.page}/${r.service || ""}/${r.fn || ""}`;
  teardown();
  if (r.page === "function" && key === lastRoute && $("#function-tabs")) {
    // Same function, another tab: keep the header, swap the panel.
    showTab(r);
    return;
  }
  lastRoute = key;
  if (r.page === "services") return servicesPage();
  if (r.page === "service") return servicePage(r.service);
  return functionPage(r);
}

// ---------------------------------------------------------------- sign-in

function signedIn(c) {
  client = c;
  $("#whoami").textContent = c.accessKeyId;
  $("#session").hidden = false;
  $("#signin-view").hidden = true;
  $("#page").hidden = false;
  if (!location.hash || location.hash === "#" || location.hash === "#/") location.hash = "#/services";
  lastRoute = "";
  route();
}

function signOut() {
  teardown();
  client = null;
  lastRoute = "";
  $("#session").hidden = true;
  $("#whoami").textContent = "";
  $("#page").hidden = true;
  $("#page").replaceChildren();
  $("#page").dataset.page = "";
  $("#crumbs").replaceChildren();
  $("#signin-form").reset();
  $("#signin-error").replaceChildren();
  $("#signin-view").hidden = false;
  document.title = "fcd console";
  $("#ak-id").focus();
}

async function onSignIn(ev) {
  ev.preventDefault();
  const button = $("#signin-submit");
  const slot = $("#signin-error");
  const creds = {
    accessKeyId: $("#ak-id").value.trim(),
    accessKeySecret: $("#ak-secret").value,
    securityToken: $("#sts-token").value.trim() || undefined,
    accountId: $("#account-id").value.trim() || undefined,
  };
  await busy(button, slot, async () => {
    if (!window.crypto || !crypto.subtle) {
      throw new Error("this page needs WebCrypto: open it over HTTPS or on localhost/127.0.0.1");
    }
    const c = new Client(creds);
    try {
      // Proves the key and signature; a key that may not list services is still a valid
      // identity (a RAM user allowed only to invoke, say): the server decides per call.
      await c.listServices({ limit: 1 });
    } catch (e) {
      if (!(e instanceof ApiError) || e.code !== "AccessDenied" || /may not act for account/.test(e.message)) throw e;
    }
    // The secret leaves the form once it is in the client.
    $("#ak-secret").value = "";
    $("#sts-token").value = "";
    signedIn(c);
  });
}

// ---------------------------------------------------------------- services

async function servicesPage() {
  crumbs([["Services", "#/services"]]);
  const main = page("services", "Services");
  const errors = h("div", { class: "errors" });
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const name = h("input", { id: "service-name", required: true, pattern: "[A-Za-z_][A-Za-z0-9_\\-]{0,127}", spellcheck: "false" });
  const desc = h("input", { id: "service-description" });
  const submit = h("button", { type: "submit", id: "create-service-submit" }, "Create service");
  const formErr = h("div", { class: "errors" });
  const form = h(
    "form",
    { id: "create-service-form", class: "card form" },
    h("h2", {}, "Create a service"),
    field("Name", name, "Letters, digits, _ and -; starts with a letter or _."),
    field("Description", desc),
    formErr,
    h("div", { class: "actions" }, submit),
  );
  main.append(h("h1", {}, "Services"), errors, h("section", { class: "card" }, list), form);

  async function load() {
    try {
      const { services = [], truncated } = await client.allServices();
      list.replaceChildren(
        ...cutShort("services", truncated, services.length),
        table(
          "services-table",
          ["Name", "Description", "Last modified"],
          services.map((s) =>
            h(
              "tr",
              { dataset: { service: s.serviceName } },
              h("td", {}, h("a", { href: serviceHref(s.serviceName) }, s.serviceName)),
              h("td", {}, s.description || ""),
              h("td", {}, fmtTime(s.lastModifiedTime)),
            ),
          ),
          "No services yet: create one below.",
        ),
      );
      showError(errors, null);
    } catch (e) {
      list.replaceChildren(table("services-table", ["Name", "Description", "Last modified"], [], "Could not list services."));
      showError(errors, e);
    }
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await busy(submit, formErr, async () => {
      await client.createService(name.value.trim(), desc.value);
      notice(formErr, `Service ${name.value.trim()} created.`);
      form.reset();
      await load();
    });
  });
  await load();
}

// ---------------------------------------------------------------- one service

async function servicePage(service) {
  crumbs([
    ["Services", "#/services"],
    [service, serviceHref(service)],
  ]);
  const main = page("service", service);
  const errors = h("div", { class: "errors" });
  const info = h("p", { class: "muted" });
  const fnList = h("div", {});
  const verList = h("div", {});
  const aliasList = h("div", {});
  main.append(h("h1", {}, "Service ", h("code", {}, service)), info, errors);

  // Functions and the create form.
  main.append(h("section", { class: "card", "aria-labelledby": "h-functions" }, h("h2", { id: "h-functions" }, "Functions"), fnList));
  main.append(createFunctionForm(service, () => loadFunctions()));

  // Versions.
  const verDesc = h("input", { id: "version-description", placeholder: "what changed" });
  const publish = h("button", { type: "button", id: "publish-version" }, "Publish version");
  const verErr = h("div", { class: "errors" });
  main.append(
    h(
      "section",
      { class: "card", "aria-labelledby": "h-versions" },
      h("h2", { id: "h-versions" }, "Versions"),
      verList,
      h("div", { class: "inline" }, field("Description of the new version", verDesc), publish),
      verErr,
    ),
  );
  publish.addEventListener("click", () =>
    busy(publish, verErr, async () => {
      const v = await client.publishVersion(service, verDesc.value);
      verDesc.value = "";
      notice(verErr, `Published version ${v.versionId}.`);
      await loadVersions();
    }),
  );

  // Aliases.
  const aName = h("input", { id: "alias-name", required: true, spellcheck: "false" });
  const aVer = h("input", { id: "alias-version", required: true, inputmode: "numeric" });
  const aAdd = h("input", { id: "alias-additional-version", inputmode: "numeric" });
  const aWeight = h("input", { id: "alias-additional-weight", type: "number", min: "0", max: "100", step: "any" });
  const aSubmit = h("button", { type: "submit", id: "create-alias-submit" }, "Create alias");
  const aErr = h("div", { class: "errors" });
  const aForm = h(
    "form",
    { id: "create-alias-form", class: "form" },
    h("h3", {}, "Create an alias"),
    h(
      "div",
      { class: "row" },
      field("Alias name", aName),
      field("Version", aVer),
      field("Additional version", aAdd, "optional: a second version…"),
      field("Its weight (%)", aWeight, "…getting this share of calls"),
    ),
    aErr,
    h("div", { class: "actions" }, aSubmit),
  );
  main.append(h("section", { class: "card", "aria-labelledby": "h-aliases" }, h("h2", { id: "h-aliases" }, "Aliases"), aliasList, aForm));
  aForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(aSubmit, aErr, async () => {
      const weights = {};
      if (aAdd.value.trim()) {
        const w = Number(aWeight.value);
        if (!(w >= 0 && w <= 100) || aWeight.value.trim() === "") throw new Error("give the additional version's weight, 0 to 100");
        weights[aAdd.value.trim()] = w / 100;
      }
      await client.createAlias(service, {
        additionalVersionWeight: weights,
        aliasName: aName.value.trim(),
        versionId: aVer.value.trim(),
      });
      notice(aErr, `Alias ${aName.value.trim()} created.`);
      aForm.reset();
      await loadAliases();
    });
  });

  async function loadFunctions() {
    try {
      const { functions = [], truncated } = await client.listFunctions(service);
      fnList.replaceChildren(
        ...cutShort("functions", truncated, functions.length),
        table(
          "functions-table",
          ["Name", "Runtime", "Handler", "Memory", "Timeout", "Code size", "Last modified"],
          functions.map((f) =>
            h(
              "tr",
              { dataset: { function: f.functionName } },
              h("td", {}, h("a", { href: functionHref(service, f.functionName) }, f.functionName)),
              h("td", {}, f.runtime || ""),
              h("td", {}, f.handler || ""),
              h("td", {}, f.memorySize ? `${f.memorySize} MB` : ""),
              h("td", {}, f.timeout ? `${f.timeout} s` : ""),
              h("td", {}, fmtBytes(f.codeSize)),
              h("td", {}, fmtTime(f.lastModifiedTime)),
            ),
          ),
          "No functions yet: create one below.",
        ),
      );
    } catch (e) {
      fnList.replaceChildren(errorBox(e));
    }
  }
  async function loadVersions() {
    try {
      const { versions = [], truncated } = await client.listVersions(service);
      verList.replaceChildren(
        ...cutShort("versions", truncated, versions.length),
        table(
          "versions-table",
          ["Version", "Description", "Created"],
          versions.map((v) =>
            h("tr", { dataset: { version: v.versionId } }, h("td", {}, v.versionId), h("td", {}, v.description || ""), h("td", {}, fmtTime(v.createdTime))),
          ),
          "No versions published: LATEST only.",
        ),
      );
    } catch (e) {
      verList.replaceChildren(errorBox(e));
    }
  }
  async function loadAliases() {
    try {
      const { aliases = [], truncated } = await client.listAliases(service);
      aliasList.replaceChildren(
        ...cutShort("aliases", truncated, aliases.length),
        table(
          "aliases-table",
          ["Alias", "Version", "Routing", "Last modified"],
          aliases.map((a) => {
            const extra = Object.entries(a.additionalVersionWeight || {});
            const share = extra.reduce((n, [, w]) => n + Number(w), 0);
            const routing = [`${a.versionId}: ${Math.round((1 - share) * 1000) / 10}%`]
              .concat(extra.map(([v, w]) => `${v}: ${Math.round(Number(w) * 1000) / 10}%`))
              .join(", ");
            return h(
              "tr",
              { dataset: { alias: a.aliasName } },
              h("td", {}, a.aliasName),
              h("td", {}, a.versionId),
              h("td", { class: "weights" }, routing),
              h("td", {}, fmtTime(a.lastModifiedTime)),
            );
          }),
          "No aliases.",
        ),
      );
    } catch (e) {
      aliasList.replaceChildren(errorBox(e));
    }
  }

  client
    .getService(service)
    .then((s) => {
      info.textContent = s.description || "";
    })
    .catch((e) => showError(errors, e));
  await Promise.all([loadFunctions(), loadVersions(), loadAliases()]);
}

function createFunctionForm(service, reload) {
  const name = h("input", { id: "function-name", required: true, spellcheck: "false" });
  const runtime = h("select", { id: "function-runtime" }, RUNTIMES.map((r) => h("option", { value: r }, r)));
  const handler = h("input", { id: "function-handler", value: "index.handler", spellcheck: "false" });
  const memory = h("input", { id: "function-memory", type: "number", min: "64", step: "64", value: "128" });
  const timeout = h("input", { id: "function-timeout", type: "number", min: "1", value: "30" });
  const zip = h("input", { id: "function-zip", type: "file", accept: ".zip,application/zip" });
  const srcName = h("input", { id: "function-source-name", value: sourceName(runtime.value), spellcheck: "false" });
  const source = h("textarea", { id: "function-source", rows: "10", spellcheck: "false", class: "code", placeholder: exampleSource(runtime.value) });
  const example = h("button", { type: "button", class: "secondary" }, "Insert example");
  const submit = h("button", { type: "submit", id: "create-function-submit" }, "Create function");
  const err = h("div", { class: "errors" });
  let nameTouched = false;
  srcName.addEventListener("input", () => (nameTouched = true));
  runtime.addEventListener("change", () => {
    if (!nameTouched) srcName.value = sourceName(runtime.value);
    source.placeholder = exampleSource(runtime.value);
  });
  example.addEventListener("click", () => {
    source.value = exampleSource(runtime.value);
    source.focus();
  });
  const form = h(
    "form",
    { id: "create-function-form", class: "card form" },
    h("h2", {}, "Create a function"),
    h(
      "div",
      { class: "row" },
      field("Name", name),
      field("Runtime", runtime),
      field("Handler", handler),
      field("Memory (MB)", memory),
      field("Timeout (s)", timeout),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Code: a .zip package, or one handler file written here"),
      field("Code package (.zip)", zip),
      h("p", { class: "muted or" }, "or"),
      field("File name in the package", srcName),
      field("Handler source", source),
      h("div", { class: "actions" }, example),
    ),
    err,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, err, async () => {
      const code = await codeFrom(zip, source, srcName.value.trim());
      const spec = {
        code,
        functionName: name.value.trim(),
        handler: handler.value.trim(),
        memorySize: Number(memory.value) || undefined,
        runtime: runtime.value,
        timeout: Number(timeout.value) || undefined,
      };
      const f = await client.createFunction(service, spec);
      notice(err, `Function ${f.functionName} created (${fmtBytes(f.codeSize)}, checksum ${f.codeChecksum}).`);
      form.reset();
      srcName.value = sourceName(runtime.value);
      nameTouched = false;
      await reload();
    });
  });
  return form;
}

// ---------------------------------------------------------------- one function

const TABS = [
  ["config", "Configuration"],
  ["code", "Code"],
  ["invoke", "Test invoke"],
  ["tasks", "Async tasks"],
  ["instances", "Instances"],
  ["logs", "Logs"],
  ["metrics", "Metrics"],
  ["triggers", "Triggers"],
];

/** What the function page keeps across tabs. */
let fnState = null;

function functionPage(r) {
  crumbs([
    ["Services", "#/services"],
    [r.service, serviceHref(r.service)],
    [r.fn, functionHref(r.service, r.fn)],
  ]);
  const main = page("function", `${r.fn} · ${r.service}`);
  const tabs = h(
    "div",
    { id: "function-tabs", class: "tabs", role: "tablist", "aria-label": "Function" },
    TABS.map(([id, label]) =>
      h(
        "button",
        {
          type: "button",
          role: "tab",
          id: `tab-${id}`,
          "aria-controls": "tab-panel",
          dataset: { tab: id },
          onclick: () => {
            location.hash = functionHref(r.service, r.fn, id);
          },
          onkeydown: tabKeys,
        },
        label,
      ),
    ),
  );
  const panel = h("section", { id: "tab-panel", role: "tabpanel", class: "card" });
  main.append(h("h1", {}, "Function ", h("code", {}, r.fn), h("span", { class: "muted" }, ` in ${r.service}`)), tabs, panel);
  fnState = { service: r.service, fn: r.fn, invoke: null };
  showTab(r);
}

/** Arrow keys move between tabs (the ARIA tabs pattern); Tab moves on into the panel. */
function tabKeys(ev) {
  const all = [...document.querySelectorAll("#function-tabs [role=tab]")];
  const i = all.indexOf(ev.currentTarget);
  let next = null;
  if (ev.key === "ArrowRight") next = all[(i + 1) % all.length];
  else if (ev.key === "ArrowLeft") next = all[(i - 1 + all.length) % all.length];
  else if (ev.key === "Home") next = all[0];
  else if (ev.key === "End") next = all[all.length - 1];
  if (next) {
    ev.preventDefault();
    next.focus();
    next.click();
  }
}

function showTab(r) {
  const tab = TABS.some(([id]) => id === r.tab) ? r.tab : "config";
  for (const b of document.querySelectorAll("#function-tabs [role=tab]")) {
    const on = b.dataset.tab === tab;
    b.setAttribute("aria-selected", on ? "true" : "false");
    b.tabIndex = on ? 0 : -1;
  }
  const panel = $("#tab-panel");
  panel.setAttribute("aria-labelledby", `tab-${tab}`);
  panel.dataset.tab = tab;
  panel.replaceChildren();
  const { service, fn } = r;
  const render = { config, code, invoke, tasks, instances, logs, metrics, triggers }[tab];
  render(panel, service, fn);
}

// --- config

async function config(panel, s, f) {
  const errors = h("div", { class: "errors" });
  const conf = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const asyncBox = h("div", { id: "async-config" }, h("p", { class: "muted" }, "Loading…"));
  panel.append(h("h2", {}, "Configuration"), errors, conf, h("h2", {}, "Asynchronous invocation"), asyncBox);
  try {
    const fc = await client.getFunction(s, f);
    const env = fc.environmentVariables && Object.keys(fc.environmentVariables).length ? json(fc.environmentVariables) : "";
    conf.replaceChildren(
      dl("function-config", [
        ["functionName", fc.functionName],
        ["functionId", fc.functionId],
        ["description", fc.description],
        ["runtime", fc.runtime],
        ["handler", fc.handler],
        ["memorySize", fc.memorySize !== undefined ? `${fc.memorySize} MB` : ""],
        ["timeout", fc.timeout !== undefined ? `${fc.timeout} s` : ""],
        ["instanceConcurrency", fc.instanceConcurrency],
        ["codeChecksum", fc.codeChecksum],
        ["codeSize", fc.codeSize !== undefined ? `${fc.codeSize} bytes (${fmtBytes(fc.codeSize)})` : ""],
        ["initializer", fc.initializer],
        ["layers", (fc.layers || []).join(", ")],
        ["environmentVariables", env ? h("pre", {}, env) : ""],
        ["customContainerConfig", fc.customContainerConfig ? h("pre", {}, json(fc.customContainerConfig)) : ""],
        ["createdTime", fmtTime(fc.createdTime)],
        ["lastModifiedTime", fmtTime(fc.lastModifiedTime)],
      ]),
    );
  } catch (e) {
    conf.replaceChildren();
    showError(errors, e);
  }
  await loadAsync(asyncBox, s, f);
}

async function loadAsync(box, s, f) {
  const err = h("div", { class: "errors" });
  const toggle = h("button", { type: "button", id: "async-stateful-toggle", class: "secondary" });
  let cfg = null;
  try {
    cfg = await client.getAsyncConfig(s, f);
  } catch (e) {
    if (!(e instanceof ApiError && e.code === "AsyncConfigNotExists")) {
      box.replaceChildren(errorBox(e));
      return;
    }
  }
  if (cfg) {
    const dest = cfg.destinationConfig || {};
    box.replaceChildren(
      dl("async-config-props", [
        ["statefulInvocation", String(!!cfg.statefulInvocation)],
        ["maxAsyncRetryAttempts", cfg.maxAsyncRetryAttempts],
        ["maxAsyncEventAgeInSeconds", cfg.maxAsyncEventAgeInSeconds],
        ["onSuccess", dest.onSuccess && dest.onSuccess.destination],
        ["onFailure", dest.onFailure && dest.onFailure.destination],
        ["lastModifiedTime", fmtTime(cfg.lastModifiedTime)],
      ]),
    );
  } else {
    box.replaceChildren(h("p", { class: "muted" }, "No async invoke config: the defaults apply (tasks started from the console are stateful anyway)."));
  }
  const stateful = !!(cfg && cfg.statefulInvocation);
  toggle.textContent = stateful ? "Turn stateful invocation off" : "Turn stateful invocation on";
  toggle.addEventListener("click", () =>
    busy(toggle, err, async () => {
      const body = { ...(cfg || {}), statefulInvocation: !stateful };
      for (const k of ["createdTime", "lastModifiedTime", "function", "service", "qualifier"]) delete body[k];
      await client.putAsyncConfig(s, f, undefined, body);
      await loadAsync(box, s, f);
    }),
  );
  box.append(h("div", { class: "actions" }, toggle), err);
}

// --- code

async function code(panel, s, f) {
  const info = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const zip = h("input", { id: "update-zip", type: "file", accept: ".zip,application/zip" });
  // index.py until the function's runtime is known (and when it cannot be read).
  const srcName = h("input", { id: "update-source-name", spellcheck: "false", value: "index.py" });
  let nameTouched = false;
  srcName.addEventListener("input", () => (nameTouched = true));
  const source = h("textarea", { id: "update-source", rows: "14", spellcheck: "false", class: "code" });
  const submit = h("button", { type: "submit", id: "update-code-submit" }, "Update code");
  const err = h("div", { class: "errors" });
  const form = h(
    "form",
    { id: "update-code-form", class: "form" },
    h("h2", {}, "Update the code"),
    field("Code package (.zip)", zip),
    h("p", { class: "muted or" }, "or"),
    field("File name in the package", srcName),
    field("Handler source", source, "Replaces the whole package with this one file."),
    err,
    h("div", { class: "actions" }, submit),
  );
  panel.append(h("h2", {}, "Current package"), info, form);
  async function load() {
    // The configuration and the package's download link are separate permissions
    // (fc:GetFunction, fc:GetFunctionCode): each shows what it can.
    const [fc, pkg] = await Promise.allSettled([client.getFunction(s, f), client.getFunctionCode(s, f)]);
    const rows = [];
    const errs = [];
    if (fc.status === "fulfilled") {
      const v = fc.value;
      if (!nameTouched) srcName.value = sourceName(v.runtime || "");
      source.placeholder = exampleSource(v.runtime || "");
      rows.push(["codeChecksum", v.codeChecksum], ["codeSize", `${v.codeSize} bytes (${fmtBytes(v.codeSize)})`]);
    } else {
      errs.push(fc.reason);
    }
    if (pkg.status === "fulfilled") {
      const url = pkg.value.url;
      rows.push(["download", url ? h("a", { href: url, rel: "noreferrer", download: `${f}.zip` }, "code package (.zip, link valid for a while)") : ""]);
    } else {
      errs.push(pkg.reason);
    }
    info.replaceChildren(...(rows.length ? [dl("code-info", rows)] : []), ...errs.map(errorBox));
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, err, async () => {
      const c = await codeFrom(zip, source, srcName.value.trim());
      const fc = await client.updateFunction(s, f, { code: c });
      notice(err, `Code updated: ${fmtBytes(fc.codeSize)}, checksum ${fc.codeChecksum}.`);
      zip.value = "";
      await load();
    });
  });
  await load();
}

// --- invoke

function newTaskId() {
  const rand = crypto.getRandomValues(new Uint8Array(6));
  return "console-" + Date.now().toString(36) + "-" + [...rand].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function decodeLog(b64) {
  try {
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder().decode(bytes);
  } catch {
    return `(undecodable: ${b64})`;
  }
}

function invoke(panel, s, f) {
  const prev = fnState && fnState.invoke;
  const payload = h("textarea", { id: "invoke-payload", rows: "4", spellcheck: "false", class: "code", placeholder: '{"key": "value"}' });
  const qualifier = h("input", { id: "invoke-qualifier", placeholder: "LATEST", spellcheck: "false" });
  const isAsync = h("input", { id: "invoke-async", type: "checkbox" });
  const submit = h("button", { type: "submit", id: "invoke-submit" }, "Invoke");
  const err = h("div", { class: "errors" });
  const result = h("div", { id: "invoke-result", "aria-live": "polite" });
  if (prev) {
    payload.value = prev.payload;
    qualifier.value = prev.qualifier;
    isAsync.checked = prev.async;
  }
  const form = h(
    "form",
    { id: "invoke-form", class: "form" },
    h("h2", {}, "Test invoke"),
    field("Payload (the event, sent as is)", payload),
    h(
      "div",
      { class: "row" },
      field("Qualifier", qualifier, "a version, an alias, or empty for LATEST"),
      h("div", { class: "field check" }, isAsync, h("label", { for: "invoke-async" }, "Asynchronous (a stateful task you can follow)")),
    ),
    err,
    h("div", { class: "actions" }, submit),
  );
  panel.append(form, result);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    fnState.invoke = { payload: payload.value, qualifier: qualifier.value, async: isAsync.checked };
    busy(submit, err, async () => {
      result.replaceChildren(h("p", { class: "muted" }, "Invoking…"));
      const started = performance.now();
      const taskId = isAsync.checked ? newTaskId() : undefined;
      let resp;
      try {
        resp = await client.invoke(s, f, payload.value, {
          qualifier: qualifier.value.trim() || undefined,
          async: isAsync.checked,
          taskId,
        });
      } catch (e) {
        result.replaceChildren();
        throw e;
      }
      const ms = Math.round(performance.now() - started);
      const errorType = resp.headers.get("x-fc-error-type");
      const shown = [];
      resp.headers.forEach((v, k) => {
        if (k.startsWith("x-fc-") && k !== "x-fc-log-result") shown.push([k, v]);
      });
      shown.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      const log = resp.headers.get("x-fc-log-result");
      const id = resp.headers.get("x-fc-stateful-async-invocation-id") || taskId;
      result.replaceChildren(
        ...[
        h(
          "p",
          { id: "invoke-status", class: errorType ? "status bad" : "status ok" },
          `${resp.status} ${resp.statusText || ""}`.trim(),
          ` · ${ms} ms`,
          errorType ? ` · ${errorType}` : "",
        ),
        isAsync.checked
          ? h(
              "p",
              {},
              "Task ",
              h("code", { id: "invoke-task-id" }, id),
              " — ",
              h("a", { href: functionHref(s, f, "tasks") }, "follow it in Async tasks"),
            )
          : null,
        h("h3", {}, "Response body"),
        h("pre", { id: "invoke-body", class: "output" }, resp.text()),
        h("h3", {}, "Log tail"),
        h("pre", { id: "invoke-log", class: "output" }, log ? decodeLog(log) : isAsync.checked ? "(asynchronous: see Logs)" : ""),
        h("h3", {}, "Response headers"),
        table(
          "invoke-headers",
          ["Header", "Value"],
          shown.map(([k, v]) => h("tr", {}, h("td", {}, h("code", {}, k)), h("td", {}, v))),
        ),
        ].filter(Boolean),
      );
    });
  });
}

// --- tasks

const TASK_STATUSES = ["Enqueued", "Running", "Succeeded", "Failed", "Stopped", "Stopping", "Expired", "Retrying", "Invalid"];
const FINAL = new Set(["Succeeded", "Failed", "Stopped", "Expired", "Invalid"]);

function tasks(panel, s, f) {
  const filter = h(
    "select",
    { id: "tasks-status-filter" },
    h("option", { value: "" }, "Any status"),
    TASK_STATUSES.map((st) => h("option", { value: st }, st)),
  );
  const refresh = h("button", { type: "button", id: "tasks-refresh" }, "Refresh");
  const auto = h("input", { id: "tasks-auto", type: "checkbox" });
  const err = h("div", { class: "errors" });
  const list = h("div", {});
  const events = h("div", { id: "task-events", "aria-live": "polite" });
  panel.append(
    h("h2", {}, "Asynchronous tasks"),
    h(
      "div",
      { class: "inline" },
      field("Status", filter),
      refresh,
      h("div", { class: "field check" }, auto, h("label", { for: "tasks-auto" }, "Refresh every 2 s")),
    ),
    err,
    list,
    events,
  );
  let timer = null;
  auto.addEventListener("change", () => {
    if (timer) clearInterval(timer);
    timer = auto.checked ? setInterval(load, 2000) : null;
  });
  cleanups.push(() => timer && clearInterval(timer));
  async function load() {
    showError(err, null);
    try {
      const { invocations = [] } = await client.listTasks(s, f, { status: filter.value || undefined });
      list.replaceChildren(
        table(
          "tasks-table",
          ["Invocation", "Status", "Qualifier", "Started", "Duration", ""],
          invocations.map((t) =>
            h(
              "tr",
              { dataset: { task: t.invocationId } },
              h("td", {}, h("button", { type: "button", class: "link", dataset: { events: t.invocationId }, onclick: () => showEvents(t.invocationId) }, t.invocationId)),
              h("td", { class: `task-status st-${t.status}` }, t.status),
              h("td", {}, t.qualifier || ""),
              h("td", {}, fmtTime(t.startedTime)),
              h("td", {}, FINAL.has(t.status) && t.durationMs !== undefined ? `${t.durationMs} ms` : ""),
              h(
                "td",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    class: "secondary small",
                    dataset: { stop: t.invocationId },
                    disabled: FINAL.has(t.status),
                    "aria-label": `Stop ${t.invocationId}`,
                    onclick: (ev) => stop(ev.currentTarget, t.invocationId),
                  },
                  "Stop",
                ),
              ),
            ),
          ),
          "No tasks.",
        ),
      );
    } catch (e) {
      list.replaceChildren();
      showError(err, e);
    }
  }
  async function stop(button, id) {
    await busy(button, err, async () => {
      await client.stopTask(s, f, id);
      await load();
      await showEvents(id);
    });
  }
  async function showEvents(id) {
    try {
      const t = await client.getTask(s, f, id);
      events.replaceChildren(
        h("h3", { id: "task-events-title", tabindex: "-1" }, "Task ", h("code", {}, id)),
        dl("task-props", [
          ["status", t.status],
          ["requestId", t.requestId],
          ["instanceId", t.instanceId],
          ["alreadyRetriedTimes", t.alreadyRetriedTimes],
          ["invocationErrorMessage", t.invocationErrorMessage],
          ["returnPayload", t.returnPayload !== undefined ? h("pre", {}, t.returnPayload) : ""],
        ]),
        table(
          "task-events-table",
          ["#", "Status", "Time", "Detail"],
          (t.events || []).map((e) =>
            h("tr", {}, h("td", {}, e.eventId), h("td", {}, e.status), h("td", {}, fmtTime(e.timestamp)), h("td", {}, e.eventDetail || "")),
          ),
          "No events.",
        ),
      );
      $("#task-events-title").focus();
    } catch (e) {
      events.replaceChildren(errorBox(e));
    }
  }
  refresh.addEventListener("click", () => busy(refresh, null, load));
  filter.addEventListener("change", load);
  load();
}

// --- instances

function instances(panel, s, f) {
  const err = h("div", { class: "errors" });
  const stamp = h("span", { class: "muted" });
  const body = h("tbody", {});
  panel.append(
    h("h2", {}, "Instances ", stamp),
    h("p", { class: "muted" }, "Live: refreshed every 2 seconds while this tab is shown."),
    err,
    h(
      "table",
      { id: "instances-table", class: "grid" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Instance"), h("th", { scope: "col" }, "Version"))),
      body,
    ),
  );
  let alive = true;
  cleanups.push(() => (alive = false));
  async function load() {
    try {
      const { instances: list = [] } = await client.listInstances(s, f);
      if (!alive) return;
      body.replaceChildren(
        ...(list.length
          ? list.map((i) => h("tr", { dataset: { instance: i.instanceId } }, h("td", {}, h("code", {}, i.instanceId)), h("td", {}, i.versionId || "")))
          : [h("tr", { class: "empty" }, h("td", { colspan: "2" }, "No instances running."))]),
      );
      stamp.textContent = `(as of ${new Date().toLocaleTimeString()})`;
      showError(err, null);
    } catch (e) {
      if (alive) showError(err, e);
    }
  }
  load();
  every(2000, load);
}

// --- logs

function logs(panel, s, f) {
  const follow = h("input", { id: "logs-follow", type: "checkbox" });
  const requestId = h("input", { id: "logs-request-id", placeholder: "all requests", spellcheck: "false" });
  const refresh = h("button", { type: "button", id: "logs-refresh" }, "Reload");
  const err = h("div", { class: "errors" });
  const view = h("ol", { id: "logs-view", class: "logs", "aria-live": "off" });
  panel.append(
    h("h2", {}, "Logs"),
    h(
      "div",
      { class: "inline" },
      field("Request id", requestId),
      refresh,
      h("div", { class: "field check" }, follow, h("label", { for: "logs-follow" }, "Follow (poll every 2 s)")),
    ),
    err,
    view,
  );
  const seen = new Set();
  let last = 0;
  let timer = null;
  function add(records) {
    for (const r of records) {
      const key = `${r.node || ""}/${r.seq}`;
      if (seen.has(key)) continue;
      seen.add(key);
      last = Math.max(last, r.timestamp || 0);
      view.append(
        h(
          "li",
          { class: `log ${String(r.level || "").toLowerCase()}` },
          h("time", { datetime: r.time }, r.time),
          " ",
          h("span", { class: "level" }, r.level || ""),
          " ",
          h("span", { class: "rid" }, r.requestId || ""),
          " ",
          h("span", { class: "msg" }, r.message),
        ),
      );
    }
    if (follow.checked) view.lastElementChild?.scrollIntoView({ block: "nearest" });
  }
  async function load(since) {
    try {
      const q = { limit: 500, requestId: requestId.value.trim() || undefined };
      if (since) q.since = String(since);
      const { records = [] } = await client.logs(s, f, q);
      add(records);
      if (!seen.size) view.replaceChildren(h("li", { class: "muted empty" }, "No log records."));
      else view.querySelector(".empty")?.remove();
      showError(err, null);
    } catch (e) {
      showError(err, e);
    }
  }
  function reload() {
    seen.clear();
    last = 0;
    view.replaceChildren();
    return load();
  }
  function setFollow() {
    if (timer) clearInterval(timer);
    timer = null;
    if (follow.checked) timer = setInterval(() => load(last || undefined), 2000);
  }
  cleanups.push(() => timer && clearInterval(timer));
  follow.addEventListener("change", setFollow);
  refresh.addEventListener("click", () => busy(refresh, null, reload));
  requestId.addEventListener("change", reload);
  reload();
}

// --- metrics

function metrics(panel, s, f) {
  const err = h("div", { class: "errors" });
  const charts = h("div", { id: "metrics-charts", class: "charts" });
  const stamp = h("span", { class: "muted" });
  panel.append(h("h2", {}, "Metrics: the last hour ", stamp), err, charts);
  async function load() {
    try {
      const m = await client.metrics(s, f);
      const points = m.points || [];
      const times = points.map((p) => p.time);
      const col = (k) => points.map((p) => (p[k] === undefined ? null : p[k]));
      charts.replaceChildren(
        lineChart({ id: "invocations", title: "Invocations per minute", times, series: [{ label: "calls", values: col("invocations"), cls: "s0" }] }),
        lineChart({ id: "errors", title: "Errors per minute", times, series: [{ label: "errors", values: col("errors"), cls: "bad" }] }),
        lineChart({
          id: "duration",
          title: "Duration (ms)",
          times,
          unit: "",
          series: [
            { label: "p50", values: col("p50Ms"), cls: "s0" },
            { label: "p99", values: col("p99Ms"), cls: "s1" },
          ],
        }),
        lineChart({ id: "cold-starts", title: "Cold starts per minute", times, series: [{ label: "cold starts", values: col("coldStarts"), cls: "s2" }] }),
      );
      stamp.textContent = `(per ${m.periodSeconds || 60} s, as of ${new Date().toLocaleTimeString()})`;
      showError(err, null);
    } catch (e) {
      showError(err, e);
    }
  }
  load();
  every(10000, load);
}

// --- triggers

async function triggers(panel, s, f) {
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  panel.append(h("h2", {}, "Triggers"), list);
  try {
    const { triggers: ts = [], truncated } = await client.listTriggers(s, f);
    list.replaceChildren(
      ...cutShort("triggers", truncated, ts.length),
      table(
        "triggers-table",
        ["Name", "Type", "Qualifier", "URL", "Config"],
        ts.map((t) => {
          let cfg = t.triggerConfig;
          try {
            cfg = json(typeof cfg === "string" ? JSON.parse(cfg) : cfg);
          } catch {
            /* shown as sent */
          }
          return h(
            "tr",
            { dataset: { trigger: t.triggerName } },
            h("td", {}, t.triggerName),
            h("td", {}, t.triggerType),
            h("td", {}, t.qualifier || "LATEST"),
            h("td", {}, t.urlInternet ? h("code", {}, t.urlInternet) : ""),
            h("td", {}, cfg ? h("pre", { class: "small" }, cfg) : ""),
          );
        }),
        "No triggers.",
      ),
    );
  } catch (e) {
    list.replaceChildren(errorBox(e));
  }
}

// ---------------------------------------------------------------- start

function start() {
  $("#signin-form").addEventListener("submit", onSignIn);
  $("#signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  $("#ak-id").focus();
}

start();
