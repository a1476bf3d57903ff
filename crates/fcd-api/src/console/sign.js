// ACS3-HMAC-SHA256 request signing on WebCrypto, as the 2021-04-06 SDKs sign and as
// crates/fcd-sign verifies: a canonical request over the method, the path exactly as sent,
// the sorted query (values RFC 3986-encoded), the signed headers and the body's SHA-256;
// its SHA-256 is HMAC'd with the secret. Pure functions of their inputs (time and nonce can
// be passed in), so the same module runs in the page and under node for checks.

const SCHEME = "ACS3-HMAC-SHA256";
const encoder = new TextEncoder();

/** Lower-case hex of a byte buffer. */
export function hex(buffer) {
  const bytes = new Uint8Array(buffer);
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Bytes of a body: a string is UTF-8, a Uint8Array/ArrayBuffer is taken as is. */
export function toBytes(body) {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new TypeError("body must be a string or bytes");
}

export async function sha256Hex(bytes) {
  return hex(await crypto.subtle.digest("SHA-256", toBytes(bytes)));
}

async function hmacSha256Hex(secret, message) {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return hex(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
}

/** RFC 3986 percent-encoding: only A-Z a-z 0-9 - _ . ~ stay literal (space is %20). */
export function rfc3986(text) {
  return encodeURIComponent(String(text)).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

/** A path from segments, each percent-encoded as the SDKs encode path parameters. */
export function path(...segments) {
  return "/" + segments.map(rfc3986).join("/");
}

/** Query pairs ([[key, value], …], or an object; undefined/null/"" values dropped). */
function queryPairs(query) {
  if (!query) return [];
  const entries = Array.isArray(query) ? query : Object.entries(query);
  return entries
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [String(k), String(v)]);
}

/** The query as sent on the wire, in the given order. */
export function wireQuery(query) {
  return queryPairs(query)
    .map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`)
    .join("&");
}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The canonical query: pairs sorted by key then value, values RFC 3986-encoded, keys as they are. */
export function canonicalQuery(query) {
  return queryPairs(query)
    .sort((a, b) => compare(a[0], b[0]) || compare(a[1], b[1]))
    .map(([k, v]) => `${k}=${rfc3986(v)}`)
    .join("&");
}

/** `YYYY-MM-DDTHH:MM:SSZ`, what `x-acs-date` carries. */
export function acsDate(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** 32 lower-case hex digits from the platform's CSPRNG. */
export function newNonce() {
  return hex(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Signs one request.
 *
 * `credentials`: {accessKeyId, accessKeySecret, securityToken?, accountId?}.
 * `request`: {method, path (already percent-encoded, as it will be sent), query, host,
 *   headers ({name: value}), body (string or bytes), action?, now?, nonce?}.
 *
 * Every header in `request.headers` is signed. Returns {headers (lower-case names, including
 * `host` and `authorization`), canonicalRequest, stringToSign}.
 * The caller sends every header but `host`, which the browser sets itself to the same value.
 */
export async function signRequest(credentials, request) {
  const body = toBytes(request.body);
  const headers = {};
  for (const [k, v] of Object.entries(request.headers || {})) {
    if (v !== undefined && v !== null) headers[k.toLowerCase()] = String(v);
  }
  headers["host"] = request.host;
  headers["x-acs-version"] = "2021-04-06";
  if (request.action) headers["x-acs-action"] = request.action;
  headers["x-acs-date"] = acsDate(request.now || new Date());
  headers["x-acs-signature-nonce"] = request.nonce || newNonce();
  headers["x-acs-content-sha256"] = await sha256Hex(body);
  if (credentials.securityToken) {
    headers["x-acs-security-token"] = credentials.securityToken;
    headers["x-acs-accesskey-id"] = credentials.accessKeyId;
  }
  if (credentials.accountId) headers["x-fc-account-id"] = credentials.accountId;

  // Every header the request is built with is signed, as the Python SDK signs all it sends:
  // host, accept, content-type, x-acs-* and x-fc-* here (the browser adds only headers a
  // signature need not cover).
  const signed = Object.keys(headers).sort();
  const canonicalHeaders = signed.map((n) => `${n}:${headers[n].trim()}\n`).join("");
  const canonicalRequest = [
    request.method.toUpperCase(),
    request.path || "/",
    canonicalQuery(request.query),
    canonicalHeaders,
    signed.join(";"),
    headers["x-acs-content-sha256"],
  ].join("\n");
  const stringToSign = `${SCHEME}\n${await sha256Hex(canonicalRequest)}`;
  const signature = await hmacSha256Hex(credentials.accessKeySecret, stringToSign);
  headers["authorization"] =
    `${SCHEME} Credential=${credentials.accessKeyId},SignedHeaders=${signed.join(";")},Signature=${signature}`;
  return { headers, canonicalRequest, stringToSign };
}
