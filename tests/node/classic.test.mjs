// Acceptance tests of fcd through the classic Node SDK, @alicloud/fc2 2.6.6 (unchanged):
// FC ak:sig signing, 2016-08-15 paths, the qualifier in the path as `service.qualifier`, and
// errors read from the body's ErrorCode into `err.code`.
//
// Run: FCD_BIN=/path/to/fcd node --test tests/node/
// The server is started exactly as tests/sdk/fcdkit.py does it (see tests/sdk/README.md).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

import FC from '@alicloud/fc2';

const ACCESS_KEY_ID = 'testAccessKeyId';
const ACCESS_KEY_SECRET = 'testAccessKeySecret';
const ACCOUNT_ID = '1234567890123456';
const REGION = 'cn-hangzhou';
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 15_000;
const LOG_TAIL_CHARS = 20_000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------------------------

class FcdServer {
  constructor() {
    const bin = process.env.FCD_BIN;
    if (!bin) throw new Error('set FCD_BIN to the fcd binary (absolute path)');
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      throw new Error(`FCD_BIN=${bin} is not an executable file`);
    }
    this.bin = bin;
    this.base = fs.mkdtempSync(path.join(os.tmpdir(), 'fcd-node-'));
    this.dataDir = path.join(this.base, 'data');
    this.stdoutPath = path.join(this.base, 'fcd.stdout.log');
    this.stderrPath = path.join(this.base, 'fcd.stderr.log');
    this.proc = null;
    this.exited = null;
    this.addr = null;
  }

  async start() {
    fs.mkdirSync(this.dataDir, { recursive: true });
    const listenAddrFile = path.join(this.dataDir, 'listen-addr');
    fs.rmSync(listenAddrFile, { force: true });
    const out = fs.openSync(this.stdoutPath, 'w');
    const err = fs.openSync(this.stderrPath, 'w');
    // fcd jails by default and refuses to start where it cannot; not root, these tests ask
    // for unjailed instances explicitly (as tests/sdk/fcdkit.py does).
    const isolation = process.getuid() === 0 ? [] : ['--isolation', 'none'];
    this.proc = spawn(
      this.bin,
      ['serve', '--listen', '127.0.0.1:0', '--data-dir', this.dataDir, ...isolation],
      {
        env: {
          ...process.env,
          FCD_ACCESS_KEY_ID: ACCESS_KEY_ID,
          FCD_ACCESS_KEY_SECRET: ACCESS_KEY_SECRET,
          FCD_ACCOUNT_ID: ACCOUNT_ID,
          FCD_REGION: REGION,
        },
        stdio: ['ignore', out, err],
        detached: true, // own process group, so leftovers can be cleaned up
      },
    );
    fs.closeSync(out);
    fs.closeSync(err);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
    let status = null;
    this.exited.then((s) => { status = s; });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (status) throw new Error(`fcd exited (${JSON.stringify(status)}) before it was ready\n${this.logs()}`);
      let text = '';
      try {
        text = fs.readFileSync(listenAddrFile, 'utf8').trim();
      } catch {
        // not written yet
      }
      const m = /^(\S+):(\d+)$/.exec(text);
      if (m && (await canConnect(m[1].replace(/^\[|\]$/g, ''), Number(m[2])))) {
        this.addr = text;
        return this;
      }
      await sleep(50);
    }
    await this.stop();
    throw new Error(`fcd did not write a usable ${listenAddrFile} within ${READY_TIMEOUT_MS} ms\n${this.logs()}`);
  }

  async stop() {
    const proc = this.proc;
    if (!proc) return;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      let timer;
      const timedOut = await Promise.race([
        this.exited.then(() => false),
        new Promise((resolve) => { timer = setTimeout(() => resolve(true), STOP_GRACE_MS); }),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        proc.kill('SIGKILL');
        await this.exited;
      }
    }
    try {
      process.kill(-proc.pid, 'SIGKILL'); // whatever the server left in its process group
    } catch {
      // the group is gone already
    }
  }

  logs() {
    const parts = [];
    for (const [kind, p] of [['stdout', this.stdoutPath], ['stderr', this.stderrPath]]) {
      let text;
      try {
        text = fs.readFileSync(p, 'utf8');
      } catch {
        continue;
      }
      if (text.length > LOG_TAIL_CHARS) text = '...\n' + text.slice(-LOG_TAIL_CHARS);
      parts.push(`----- fcd ${kind} (${p}) -----\n${text}`);
    }
    return parts.join('\n') || '(no fcd output captured)';
  }

  client() {
    return new FC(ACCOUNT_ID, {
      accessKeyID: ACCESS_KEY_ID,
      accessKeySecret: ACCESS_KEY_SECRET,
      region: REGION,
      endpoint: `http://${this.addr}`,
    });
  }
}

function canConnect(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(2000);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
    socket.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------
// Zips, names, assertions
// ---------------------------------------------------------------------------------------------

// A ZIP with deflated entries and Unix mode 0644, built with zlib.deflateRawSync and zlib.crc32.
function makeZip(files) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  // 2024-01-01 00:00:00 in DOS format.
  const dosTime = 0;
  const dosDate = ((2024 - 1980) << 9) | (1 << 5) | 1;
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content);
    const nameBuf = Buffer.from(name, 'utf8');
    const compressed = zlib.deflateRawSync(data);
    const crc = zlib.crc32(data) >>> 0;

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(dosTime, 10);
    local.writeUInt16LE(dosDate, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, nameBuf, compressed);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix, spec 2.0
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(dosTime, 12);
    central.writeUInt16LE(dosDate, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBuf.length, 28);
    central.writeUInt16LE(0, 30); // extra
    central.writeUInt16LE(0, 32); // comment
    central.writeUInt16LE(0, 34); // disk
    central.writeUInt16LE(0, 36); // internal attributes
    central.writeUInt32LE(((0o100644 << 16) >>> 0), 38); // regular file, rw-r--r--
    central.writeUInt32LE(offset, 42);
    centrals.push(central, nameBuf);

    offset += local.length + nameBuf.length + compressed.length;
  }
  const centralDir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(0, 4);
  end.writeUInt16LE(0, 6);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(centralDir.length, 12);
  end.writeUInt32LE(offset, 16);
  end.writeUInt16LE(0, 20);
  return Buffer.concat([...locals, centralDir, end]);
}

const TAGGED_HANDLER = `import json

CODE = '__CODE__'


def handler(event, context):
    return json.dumps({
        'code': CODE,
        'event': event.decode('utf-8'),
        'qualifier': context.service.qualifier,
        'versionId': context.service.version_id,
    })
`;

function taggedCode(tag) {
  return { zipFile: makeZip({ 'index.py': TAGGED_HANDLER.replace('__CODE__', tag) }).toString('base64') };
}

function unique(prefix) {
  return `${prefix}-${randomUUID().replace(/-/g, '').slice(0, 12)}`;
}

// Asserts that `promise` rejects with the SDK's error carrying FC's ErrorCode as `.code`.
async function rejectsWithCode(promise, code, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Error, `expected an Error, got ${err}`);
    assert.equal(err.code, code, `expected code ${code}, got ${err.code}: ${err.message}`);
    assert.equal(err.name, `FC${code}Error`);
    assert.match(err.message, new RegExp(`failed with ${status}\\. requestid: [0-9a-f-]{8,}`));
    return true;
  });
}

// Best-effort cleanup: aliases, versions, functions, then the service.
async function deleteServiceTree(client, service) {
  const quiet = async (p) => { try { await p; } catch { /* best effort */ } };
  try {
    const aliases = (await client.listAliases(service, { limit: 100 })).data.aliases || [];
    for (const a of aliases) await quiet(client.deleteAlias(service, a.aliasName));
    const versions = (await client.listVersions(service, { limit: 100 })).data.versions || [];
    for (const v of versions) await quiet(client.deleteVersion(service, v.versionId));
    const functions = (await client.listFunctions(service, { limit: 100 })).data.functions || [];
    for (const f of functions) await quiet(client.deleteFunction(service, f.functionName));
  } catch {
    // the service may not exist
  }
  await quiet(client.deleteService(service));
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe('classic Node SDK @alicloud/fc2', () => {
  let server;
  let client;
  const services = [];

  before(async () => {
    server = await new FcdServer().start();
    client = server.client();
  });

  after(async () => {
    if (client) {
      for (const s of services) await deleteServiceTree(client, s);
    }
    if (server) {
      await server.stop();
      try {
        fs.rmSync(server.base, { recursive: true, force: true });
      } catch {
        // leave it for the OS
      }
    }
  });

  // Runs a test body and attaches the server's log tail when it fails.
  const withLogs = (fn) => async (t) => {
    try {
      await fn(t);
    } catch (err) {
      if (err && typeof err === 'object' && server) err.message = `${err.message}\n${server.logs()}`;
      throw err;
    }
  };

  async function newService(description = 'node') {
    const name = unique('node');
    const resp = await client.createService(name, { description });
    assert.equal(resp.data.serviceName, name);
    services.push(name);
    return name;
  }

  async function invoke(service, fn, event, qualifier) {
    const resp = await client.invokeFunction(service, fn, event, {}, qualifier);
    assert.equal(resp.headers['x-fc-error-type'], undefined, `function error: ${JSON.stringify(resp.data)}`);
    assert.equal(typeof resp.data, 'string');
    return { out: JSON.parse(resp.data), headers: resp.headers };
  }

  test('versions, aliases and qualified invocations', withLogs(async () => {
    const service = await newService('node versions');
    const created = (await client.createFunction(service, {
      functionName: 'fn',
      runtime: 'python3.10',
      handler: 'index.handler',
      code: taggedCode('old'),
    })).data;
    assert.equal(created.functionName, 'fn');
    assert.match(created.codeChecksum, /^[0-9]+$/);

    const v1 = (await client.publishVersion(service, 'first')).data;
    assert.equal(v1.versionId, '1');
    assert.equal(v1.description, 'first');

    const alias = await client.createAlias(service, 'prod', v1.versionId, { description: 'production' });
    assert.equal(alias.data.aliasName, 'prod');
    assert.equal(alias.data.versionId, '1');
    assert.equal(alias.data.description, 'production');
    const etag = alias.headers.etag;
    assert.ok(etag, 'CreateAlias returns an etag');

    const updated = (await client.updateFunction(service, 'fn', { code: taggedCode('new') })).data;
    assert.notEqual(updated.codeChecksum, created.codeChecksum);

    let r = await invoke(service, 'fn', 'by alias', 'prod');
    assert.deepEqual(r.out, { code: 'old', event: 'by alias', qualifier: 'prod', versionId: '1' });
    assert.equal(r.headers['x-fc-invocation-service-version'], '1');
    assert.equal(r.headers['x-fc-code-checksum'], created.codeChecksum);

    r = await invoke(service, 'fn', 'by version', '1');
    assert.deepEqual(r.out, { code: 'old', event: 'by version', qualifier: '1', versionId: '1' });
    assert.equal(r.headers['x-fc-invocation-service-version'], '1');

    r = await invoke(service, 'fn', 'latest');
    assert.equal(r.out.code, 'new');
    assert.equal(r.out.qualifier, 'LATEST');
    assert.equal(r.headers['x-fc-invocation-service-version'], 'LATEST');
    r = await invoke(service, 'fn', 'latest', 'LATEST');
    assert.equal(r.out.code, 'new');

    // Qualified reads see the version's snapshot.
    const fnAtProd = (await client.getFunction(service, 'fn', {}, 'prod')).data;
    assert.equal(fnAtProd.codeChecksum, created.codeChecksum);
    assert.equal((await client.getFunction(service, 'fn')).data.codeChecksum, updated.codeChecksum);
    assert.equal((await client.getService(service, {}, '1')).data.description, 'node versions');
    const listed = (await client.listFunctions(service, {}, {}, 'prod')).data.functions;
    assert.deepEqual(listed.map((f) => f.codeChecksum), [created.codeChecksum]);

    // Versions and aliases listings.
    const v2 = (await client.publishVersion(service)).data;
    assert.equal(v2.versionId, '2');
    const versions = (await client.listVersions(service)).data;
    assert.deepEqual(versions.versions.map((v) => v.versionId), ['2', '1']);
    assert.equal(versions.direction, 'BACKWARD');
    const forward = (await client.listVersions(service, { direction: 'FORWARD', limit: 1 })).data;
    assert.deepEqual(forward.versions.map((v) => v.versionId), ['1']);
    assert.ok(forward.nextToken);

    const got = await client.getAlias(service, 'prod');
    assert.equal(got.headers.etag, etag);
    assert.equal(got.data.versionId, '1');

    const moved = await client.updateAlias(
      service, 'prod', '2', { additionalVersionWeight: { 1: 0.5 } }, { 'if-match': etag },
    );
    assert.equal(moved.data.versionId, '2');
    assert.deepEqual(moved.data.additionalVersionWeight, { 1: 0.5 });
    assert.notEqual(moved.headers.etag, etag);
    await rejectsWithCode(
      client.updateAlias(service, 'prod', '1', {}, { 'if-match': etag }), 'PreconditionFailed', 412,
    );

    const seen = new Set();
    for (let i = 0; i < 10; i++) {
      const { out, headers } = await invoke(service, 'fn', 'weighted', 'prod');
      assert.equal(out.versionId, headers['x-fc-invocation-service-version']);
      seen.add(out.code);
    }
    assert.deepEqual([...seen].sort(), ['new', 'old']);

    const aliases = (await client.listAliases(service)).data.aliases;
    assert.deepEqual(aliases.map((a) => a.aliasName), ['prod']);

    // Deleting in the right order empties the service.
    await client.deleteAlias(service, 'prod');
    await client.deleteVersion(service, '1');
    await client.deleteVersion(service, '2');
    await client.deleteFunction(service, 'fn');
    await client.deleteService(service);
    await rejectsWithCode(client.getService(service), 'ServiceNotFound', 404);
  }));

  test('errors carry FC\'s ErrorCode as err.code', withLogs(async () => {
    const service = await newService();
    await client.createFunction(service, {
      functionName: 'fn',
      runtime: 'python3.10',
      handler: 'index.handler',
      code: taggedCode('x'),
    });
    await client.publishVersion(service);
    await client.createAlias(service, 'prod', '1');

    await rejectsWithCode(client.getService(unique('nosvc')), 'ServiceNotFound', 404);
    await rejectsWithCode(client.publishVersion(unique('nosvc')), 'ServiceNotFound', 404);
    await rejectsWithCode(client.invokeFunction(unique('nosvc'), 'fn', 'x', {}, 'prod'), 'ServiceNotFound', 404);
    await rejectsWithCode(client.invokeFunction(service, 'fn', 'x', {}, 'nope'), 'AliasNotFound', 404);
    await rejectsWithCode(client.invokeFunction(service, 'fn', 'x', {}, '99'), 'VersionNotFound', 404);
    await rejectsWithCode(client.invokeFunction(service, 'nofn', 'x', {}, 'prod'), 'FunctionNotFound', 404);
    await rejectsWithCode(client.getAlias(service, 'nope'), 'AliasNotFound', 404);
    await rejectsWithCode(client.getFunction(service, 'fn', {}, 'nope'), 'AliasNotFound', 404);
    await rejectsWithCode(client.createAlias(service, 'prod', '1'), 'AliasAlreadyExists', 409);
    await rejectsWithCode(client.createAlias(service, 'LATEST', '1'), 'InvalidArgument', 400);
    await rejectsWithCode(client.createAlias(service, 'w', '1', { additionalVersionWeight: { 1: 0.5 } }),
      'AdditionalVersionContainsMajorVersion', 400);
    await rejectsWithCode(client.createAlias(service, 'w', '7'), 'VersionNotFound', 404);
    await rejectsWithCode(client.publishVersion(service), 'InvalidArgument', 400);
    await rejectsWithCode(client.deleteVersion(service, '1'), 'InvalidArgument', 400);
    await rejectsWithCode(client.deleteVersion(service, '99'), 'VersionNotFound', 404);
    await rejectsWithCode(client.deleteService(service), 'ServiceNotEmpty', 412);
  }));
});
