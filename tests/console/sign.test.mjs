// The console's signer (crates/fcd-api/src/console/sign.js) against the ACS3 vectors the real
// 2021-04-06 SDK produced (../shared/spec/fc-api.md §3.3), and its store-only ZIP writer's
// CRC-32. Run: node --test tests/console/ (node 20+: WebCrypto is globalThis.crypto).

import assert from "node:assert/strict";
import { test } from "node:test";

import { canonicalQuery, rfc3986, signRequest, wireQuery } from "../../crates/fcd-api/src/console/sign.js";
import { crc32, zipStore } from "../../crates/fcd-api/src/console/zip.js";

const creds = { accessKeyId: "testAccessKeyId", accessKeySecret: "testAccessKeySecret", accountId: "1234567890123456" };
const pinned = {
  host: "127.0.0.1:9000",
  now: new Date("2024-01-01T00:00:00Z"),
  nonce: "0123456789abcdef0123456789abcdef",
};
// What the Python SDK sends besides what the console sends (the browser cannot sign user-agent,
// so the console does not send one; the vectors have it).
const sdkHeaders = {
  accept: "application/json",
  "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
  "x-acs-credentials-provider": "static_ak",
};

function signature(auth) {
  return auth.match(/Signature=([0-9a-f]{64})$/)[1];
}

test("vector A: InvokeFunction with a qualifier and x-fc-* headers", async () => {
  const { headers, stringToSign } = await signRequest(creds, {
    ...pinned,
    method: "POST",
    path: "/2021-04-06/services/demo-svc/functions/hello/invocations",
    query: { qualifier: "prod" },
    headers: { ...sdkHeaders, "x-fc-invocation-type": "Sync", "x-fc-log-type": "Tail" },
    body: '{"key":"value"}',
    action: "InvokeFunction",
  });
  assert.equal(headers["x-acs-content-sha256"], "e43abcf3375244839c012f9633f95862d232a95b00d5bc7348b3098b9fed7f32");
  assert.equal(stringToSign, "ACS3-HMAC-SHA256\n92b34eca30ccaabe91a126a5f72508273a7ddb1e8137cc5d3fab032a87445560");
  assert.equal(signature(headers.authorization), "7f3771614e5bba8dfa7628a43401468098ece3e7dbc06036ec9a770b5c406412");
  assert.match(
    headers.authorization,
    /SignedHeaders=accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version;x-fc-account-id;x-fc-invocation-type;x-fc-log-type,/,
  );
});

test("vector B: a query that needs re-encoding", async () => {
  const query = { limit: 10, prefix: "my svc/ä*~" };
  assert.equal(canonicalQuery(query), "limit=10&prefix=my%20svc%2F%C3%A4%2A~");
  const { headers } = await signRequest(creds, {
    ...pinned,
    method: "GET",
    path: "/2021-04-06/services",
    query,
    headers: sdkHeaders,
    action: "ListServices",
  });
  assert.equal(headers["x-acs-content-sha256"], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(signature(headers.authorization), "9f52768a0f64f24fdc1ec1dae25f5a61a46f0b89da83b0c8608b3638bc796d51");
});

test("vector C: a JSON body", async () => {
  const { headers } = await signRequest(creds, {
    ...pinned,
    method: "POST",
    path: "/2021-04-06/services",
    headers: { ...sdkHeaders, "content-type": "application/json; charset=utf-8" },
    body: '{"description":"demo","serviceName":"demo-svc"}',
    action: "CreateService",
  });
  assert.equal(headers["x-acs-content-sha256"], "8d470c5d75923ac302787691671b27503ebfb6ae0822ba126a448658938d6dc0");
  assert.equal(signature(headers.authorization), "098df8aa063db84e4c0444062f05fece99dc776b36f63a9d877ee8b03c26e237");
});

test("STS credentials sign their token and repeat the key", async () => {
  const { headers } = await signRequest(
    { accessKeyId: "STS.abc", accessKeySecret: "s", securityToken: "tok" },
    { ...pinned, method: "GET", path: "/2021-04-06/services" },
  );
  assert.equal(headers["x-acs-security-token"], "tok");
  assert.equal(headers["x-acs-accesskey-id"], "STS.abc");
  assert.match(headers.authorization, /SignedHeaders=[^,]*x-acs-accesskey-id;[^,]*x-acs-security-token/);
});

test("fresh requests get a fresh nonce and a second-precision date", async () => {
  const a = await signRequest(creds, { host: "h", method: "GET", path: "/" });
  const b = await signRequest(creds, { host: "h", method: "GET", path: "/" });
  assert.match(a.headers["x-acs-signature-nonce"], /^[0-9a-f]{32}$/);
  assert.notEqual(a.headers["x-acs-signature-nonce"], b.headers["x-acs-signature-nonce"]);
  assert.match(a.headers["x-acs-date"], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
});

test("RFC 3986 encoding of path segments and query values", () => {
  assert.equal(rfc3986("a b/c*'()!~-._"), "a%20b%2Fc%2A%27%28%29%21~-._");
  assert.equal(wireQuery([["b", "x y"], ["a", ""], ["c", undefined]]), "b=x%20y");
});

test("CRC-32 and a store-only zip", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  const zip = zipStore([{ name: "index.py", data: "print(1)\n" }], new Date(2024, 0, 2, 3, 4, 6));
  const v = new DataView(zip.buffer);
  assert.equal(v.getUint32(0, true), 0x04034b50);
  assert.equal(v.getUint32(14, true), crc32(new TextEncoder().encode("print(1)\n")));
  const end = zip.length - 22;
  assert.equal(v.getUint32(end, true), 0x06054b50);
  assert.equal(v.getUint16(end + 10, true), 1);
});
