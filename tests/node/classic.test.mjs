// Acceptance tests of fcd through the classic Node SDK, @alicloud/fc2 2.6.6 (unchanged):
// FC ak:sig signing, 2016-08-15 paths, the qualifier in the path as `service.qualifier`, and
// errors read from the body's ErrorCode into `err.code`.
//
// Run: FCD_BIN=/path/to/fcd node --test tests/node/
// The server is started exactly as tests/sdk/fcdkit.py does it (see tests/sdk/README.md).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import FC from '@alicloud/fc2';

import { ACCESS_KEY_ID, ACCESS_KEY_SECRET, ACCOUNT_ID, FcdServer, REGION, makeZip, unique } from './fcdkit.mjs';

function fc2Client(server) {
  return new FC(ACCOUNT_ID, {
    accessKeyID: ACCESS_KEY_ID,
    accessKeySecret: ACCESS_KEY_SECRET,
    region: REGION,
    endpoint: `http://${server.addr}`,
  });
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
    client = fc2Client(server);
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
