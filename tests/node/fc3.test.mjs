// Acceptance tests of fcd's FC 3.0 API (`/2023-03-30`) through the official Node SDK,
// @alicloud/fc20230330 4.7.6 (unchanged): ACS3 signing with no account header, bodies sent
// with `Transfer-Encoding: chunked`, `svc$fn` names percent-encoded, errors read from the
// body's `Code`/`Message`/`RequestId`.
//
// Run: FCD_BIN=/path/to/fcd node --test tests/node/

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { Readable } from 'node:stream';

import fc3 from '@alicloud/fc20230330';
import openapi from '@alicloud/openapi-core';
import FC2 from '@alicloud/fc2';

import {
  ACCESS_KEY_ID, ACCESS_KEY_SECRET, ACCOUNT_ID, FcdServer, REGION, makeZip, sleep, unique,
} from './fcdkit.mjs';

const Client = fc3.default;
const { $OpenApiUtil } = openapi;

// FC 3.0's request ids, e.g. `1-65bf56b2-1368aa6d-c7da7fa6a4d4`.
const FC3_REQUEST_ID = /^1-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{12}$/;
const WAIT_MS = 60_000;

function fc3Client(endpoint) {
  return new Client(new $OpenApiUtil.Config({
    accessKeyId: ACCESS_KEY_ID,
    accessKeySecret: ACCESS_KEY_SECRET,
    regionId: REGION,
    endpoint,
    protocol: 'http',
    readTimeout: 120_000,
  }));
}

// One Python handler for every test: it says which code it is (`CODE`), echoes API events,
// answers HTTP trigger events (FC 3.0's `version: v1` JSON event), sleeps on `sleep`, and
// uses a layer's module on `layer`.
const HANDLER = `import json
import time

CODE = '__CODE__'


def handler(event, context):
    text = event.decode('utf-8') if isinstance(event, (bytes, bytearray)) else str(event)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get('version') == 'v1' and 'requestContext' in parsed:
        return json.dumps({
            'code': CODE,
            'http': True,
            'method': parsed['requestContext']['http']['method'],
            'path': parsed.get('rawPath'),
            'query': parsed.get('queryParameters'),
        })
    if text == 'sleep':
        time.sleep(40)
    if text == 'layer':
        import greet
        return json.dumps({'code': CODE, 'layer': greet.hello()})
    print('fc3-log-marker ' + CODE)
    return json.dumps({'code': CODE, 'event': text})
`;

function code(tag) {
  return new fc3.InputCodeLocation({
    zipFile: makeZip({ 'index.py': HANDLER.replace('__CODE__', tag) }).toString('base64'),
  });
}

async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

// Asserts that `promise` rejects with the 3.0 SDK's error for FC code `code` and `status`,
// built from a body with FC 3.0's keys and a 3.0 request id.
async function rejectsWith(promise, code, status) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Error, `expected an Error, got ${err}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    assert.equal(err.statusCode, status, err.message);
    assert.match(err.requestId, FC3_REQUEST_ID);
    assert.equal(err.data.RequestId, err.requestId);
    assert.equal(err.data.Code, code);
    assert.ok(err.data.Message, 'Message');
    assert.match(err.message, new RegExp(`code: ${status}, .+ request id: ${err.requestId}`));
    return true;
  });
}

// As `rejectsWith`, where the spec names no code (fcd's own choice): any code, this status.
async function rejectsWithStatus(promise, status) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.statusCode, status, err.message);
    assert.match(err.requestId, FC3_REQUEST_ID);
    assert.ok(err.data.Code && err.data.Message, JSON.stringify(err.data));
    return true;
  });
}

describe('FC 3.0 Node SDK @alicloud/fc20230330', () => {
  let server;
  let client;
  const functions = [];
  const layers = [];

  before(async () => {
    server = await new FcdServer().start();
    client = fc3Client(server.addr);
  });

  after(async () => {
    const quiet = async (p) => { try { await p; } catch { /* best effort */ } };
    if (client) {
      for (const f of functions) {
        try {
          const triggers = (await client.listTriggers(f, new fc3.ListTriggersRequest({}))).body.triggers || [];
          for (const t of triggers) await quiet(client.deleteTrigger(f, t.triggerName));
          const aliases = (await client.listAliases(f, new fc3.ListAliasesRequest({}))).body.aliases || [];
          for (const a of aliases) await quiet(client.deleteAlias(f, a.aliasName));
          const versions = (await client.listFunctionVersions(f, new fc3.ListFunctionVersionsRequest({}))).body.versions || [];
          for (const v of versions) await quiet(client.deleteFunctionVersion(f, v.versionId));
        } catch {
          // the function may be gone
        }
        await quiet(client.deleteProvisionConfig(f, new fc3.DeleteProvisionConfigRequest({ qualifier: 'prod' })));
        await quiet(client.deleteFunction(f));
      }
      for (const [name, version] of layers) await quiet(client.deleteLayerVersion(name, String(version)));
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

  async function newFunction(tag, extra = {}) {
    const name = unique('f3');
    const resp = await client.createFunction(new fc3.CreateFunctionRequest({
      body: new fc3.CreateFunctionInput({
        functionName: name,
        runtime: 'python3.10',
        handler: 'index.handler',
        memorySize: 128,
        timeout: 60,
        code: code(tag),
        ...extra,
      }),
    }));
    functions.push(name);
    assert.equal(resp.body.functionName, name);
    return resp.body;
  }

  async function invoke(name, event, { qualifier, logType, type, taskId } = {}) {
    const resp = await client.invokeFunctionWithOptions(
      name,
      new fc3.InvokeFunctionRequest({ body: Readable.from([Buffer.from(event)]), qualifier }),
      new fc3.InvokeFunctionHeaders({ xFcLogType: logType, xFcInvocationType: type, xFcAsyncTaskId: taskId }),
      {},
    );
    const body = await readAll(resp.body);
    return { status: resp.statusCode, headers: resp.headers, text: body.toString('utf8') };
  }

  async function invokeJson(name, event, opts) {
    const r = await invoke(name, event, opts);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['x-fc-error-type'], undefined, `function error: ${r.text}`);
    assert.match(r.headers['x-fc-request-id'], FC3_REQUEST_ID);
    return { out: JSON.parse(r.text), headers: r.headers };
  }

  test('errors carry Code, Message and a 3.0 RequestId', withLogs(async () => {
    // An operation fcd leaves out: decided by the router, with FC 3.0's error body.
    await rejectsWith(
      client.listSessions(unique('f3'), new fc3.ListSessionsRequest({})), 'NotSupported', 400,
    );
    await rejectsWith(client.getFunction(unique('nofn'), new fc3.GetFunctionRequest({})), 'FunctionNotFound', 404);
    await rejectsWith(
      client.invokeFunction(unique('nofn'), new fc3.InvokeFunctionRequest({ body: Readable.from([Buffer.from('x')]) })),
      'FunctionNotFound', 404,
    );
    await rejectsWith(client.getFunction('bad.name', new fc3.GetFunctionRequest({})), 'InvalidArgument', 400);
  }));

  test('bodies arrive chunked and are accepted', withLogs(async () => {
    // What the SDK puts on the wire: every body chunked, no Content-Length.
    const seen = [];
    const recorder = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        seen.push({ te: req.headers['transfer-encoding'], cl: req.headers['content-length'], path: req.url });
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ Code: 'Recorded', Message: 'recorded', RequestId: 'r' }));
      });
    });
    await new Promise((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    try {
      const rec = fc3Client(`127.0.0.1:${recorder.address().port}`);
      await assert.rejects(rec.createSession('f', new fc3.CreateSessionRequest({
        body: new fc3.CreateSessionInput({ sessionTTLInSeconds: 60 }),
      })));
    } finally {
      recorder.close();
    }
    assert.equal(seen.length, 1);
    assert.equal(seen[0].te, 'chunked');
    assert.equal(seen[0].cl, undefined);

    // The same call to fcd gets past the signature check (over the de-chunked body) to the
    // router's answer.
    await rejectsWith(client.createSession(unique('f3'), new fc3.CreateSessionRequest({
      body: new fc3.CreateSessionInput({ sessionTTLInSeconds: 60 }),
    })), 'NotSupported', 400);
  }));

  test('DescribeRegions names the server\'s region', withLogs(async () => {
    const resp = await client.describeRegions(new fc3.DescribeRegionsRequest({}));
    const regions = resp.body.regions.region.map((r) => r.regionId);
    assert.ok(regions.includes(REGION), JSON.stringify(resp.body));
  }));

  test('create, get, update, list (fcVersion) and delete a function', withLogs(async () => {
    const created = await newFunction('one', { description: 'first', environmentVariables: { A: '1' } });
    const name = created.functionName;
    assert.equal(created.functionArn, `acs:fc:${REGION}:${ACCOUNT_ID}:functions/${name}`);
    assert.equal(created.runtime, 'python3.10');
    assert.equal(created.handler, 'index.handler');
    assert.equal(created.description, 'first');
    assert.deepEqual(created.environmentVariables, { A: '1' });
    assert.match(created.codeChecksum, /^[0-9]+$/);
    await rejectsWith(client.createFunction(new fc3.CreateFunctionRequest({
      body: new fc3.CreateFunctionInput({
        functionName: name, runtime: 'python3.10', handler: 'index.handler', code: code('dup'),
      }),
    })), 'FunctionAlreadyExists', 409);

    const got = (await client.getFunction(name, new fc3.GetFunctionRequest({}))).body;
    assert.equal(got.functionName, name);
    assert.equal(got.codeChecksum, created.codeChecksum);
    assert.equal(got.state, 'Active');

    // A partial update keeps what it does not name.
    const updated = (await client.updateFunction(name, new fc3.UpdateFunctionRequest({
      body: new fc3.UpdateFunctionInput({ description: 'second', memorySize: 256 }),
    }))).body;
    assert.equal(updated.description, 'second');
    assert.equal(updated.memorySize, 256);
    assert.equal(updated.handler, 'index.handler');
    assert.equal(updated.codeChecksum, created.codeChecksum);

    // A 2.0 function shows in 3.0 as `svc$fn`; fcVersion tells the two apart.
    const fc2 = new FC2(ACCOUNT_ID, {
      accessKeyID: ACCESS_KEY_ID, accessKeySecret: ACCESS_KEY_SECRET, region: REGION, endpoint: `http://${server.addr}`,
    });
    const svc = unique('svc');
    await fc2.createService(svc);
    try {
      await fc2.createFunction(svc, {
        functionName: 'old', runtime: 'python3.10', handler: 'index.handler', code: { zipFile: code('v2').zipFile },
      });
      const v2name = `${svc}$old`;
      const names = async (fcVersion, prefix) => (await client.listFunctions(new fc3.ListFunctionsRequest({
        fcVersion, prefix, limit: 100,
      }))).body.functions.map((f) => f.functionName);
      assert.ok((await names('v3', 'f3-')).includes(name));
      assert.ok(!(await names('v2', 'f3-')).includes(name));
      assert.ok((await names(undefined, 'f3-')).includes(name));
      assert.ok((await names('v2', svc)).includes(v2name));
      assert.ok(!(await names('v3', svc)).includes(v2name));
      const old = (await client.getFunction(v2name, new fc3.GetFunctionRequest({}))).body;
      assert.equal(old.functionName, v2name);
    } finally {
      try { await fc2.deleteFunction(svc, 'old'); } catch { /* best effort */ }
      try { await fc2.deleteService(svc); } catch { /* best effort */ }
    }

    await client.deleteFunction(name);
    await rejectsWith(client.getFunction(name, new fc3.GetFunctionRequest({})), 'FunctionNotFound', 404);
  }));

  test('sync invocation with the log tail', withLogs(async () => {
    const { functionName: name } = await newFunction('sync');
    const { out, headers } = await invokeJson(name, 'hello', { logType: 'Tail' });
    assert.deepEqual(out, { code: 'sync', event: 'hello' });
    const log = Buffer.from(headers['x-fc-log-result'], 'base64').toString('utf8');
    assert.match(log, /fc3-log-marker sync/);
  }));

  test('versions, a weighted alias and invocations by qualifier', withLogs(async () => {
    const { functionName: name } = await newFunction('old');
    const v1 = (await client.publishFunctionVersion(name, new fc3.PublishFunctionVersionRequest({
      body: new fc3.PublishVersionInput({ description: 'first' }),
    }))).body;
    assert.equal(v1.versionId, '1');
    assert.equal(v1.description, 'first');
    await client.updateFunction(name, new fc3.UpdateFunctionRequest({
      body: new fc3.UpdateFunctionInput({ code: code('new') }),
    }));
    const v2 = (await client.publishFunctionVersion(name, new fc3.PublishFunctionVersionRequest({
      body: new fc3.PublishVersionInput({}),
    }))).body;
    assert.equal(v2.versionId, '2');
    const versions = (await client.listFunctionVersions(name, new fc3.ListFunctionVersionsRequest({}))).body;
    assert.deepEqual(versions.versions.map((v) => v.versionId), ['2', '1']);

    const alias = (await client.createAlias(name, new fc3.CreateAliasRequest({
      body: new fc3.CreateAliasInput({
        aliasName: 'prod', versionId: '1', description: 'production', additionalVersionWeight: { 2: 0.5 },
      }),
    }))).body;
    assert.equal(alias.aliasName, 'prod');
    assert.equal(alias.versionId, '1');
    assert.deepEqual(alias.additionalVersionWeight, { 2: 0.5 });
    assert.equal((await client.getAlias(name, 'prod')).body.description, 'production');

    assert.equal((await invokeJson(name, 'x', { qualifier: '1' })).out.code, 'old');
    assert.equal((await invokeJson(name, 'x', { qualifier: '2' })).out.code, 'new');
    assert.equal((await invokeJson(name, 'x', { qualifier: 'LATEST' })).out.code, 'new');
    assert.equal((await invokeJson(name, 'x')).out.code, 'new');
    const seen = new Set();
    for (let i = 0; i < 16 && seen.size < 2; i++) {
      const { out, headers } = await invokeJson(name, 'weighted', { qualifier: 'prod' });
      assert.equal(out.code, headers['x-fc-invocation-service-version'] === '1' ? 'old' : 'new');
      seen.add(out.code);
    }
    assert.deepEqual([...seen].sort(), ['new', 'old']);
    // Reads by qualifier see the version's snapshot.
    const atOne = (await client.getFunction(name, new fc3.GetFunctionRequest({ qualifier: '1' }))).body;
    const latest = (await client.getFunction(name, new fc3.GetFunctionRequest({}))).body;
    assert.notEqual(atOne.codeChecksum, latest.codeChecksum);
    await rejectsWith(invoke(name, 'x', { qualifier: 'nope' }), 'AliasNotFound', 404);
  }));

  test('an HTTP trigger\'s URL reaches the function', withLogs(async () => {
    const { functionName: name } = await newFunction('web');
    const trigger = (await client.createTrigger(name, new fc3.CreateTriggerRequest({
      body: new fc3.CreateTriggerInput({
        triggerName: 'web',
        triggerType: 'http',
        triggerConfig: JSON.stringify({ authType: 'anonymous', methods: ['GET', 'POST'] }),
      }),
    }))).body;
    assert.equal(trigger.triggerName, 'web');
    assert.equal(trigger.triggerType, 'http');
    assert.equal(trigger.targetArn, `acs:fc:${REGION}:${ACCOUNT_ID}:functions/${name}`);
    const url = trigger.httpTrigger.urlInternet;
    assert.match(url, /^https?:\/\//);
    assert.equal((await client.getTrigger(name, 'web')).body.httpTrigger.urlInternet, url);
    await rejectsWith(client.createTrigger(name, new fc3.CreateTriggerRequest({
      body: new fc3.CreateTriggerInput({
        triggerName: 'web',
        triggerType: 'http',
        triggerConfig: JSON.stringify({ authType: 'anonymous', methods: ['GET'] }),
      }),
    })), 'TriggerAlreadyExists', 409);

    const resp = await fetch(`${url.replace(/\/$/, '')}/hello/world?x=1`);
    const text = await resp.text();
    assert.equal(resp.status, 200, text);
    const out = JSON.parse(text);
    assert.equal(out.code, 'web');
    assert.equal(out.http, true);
    assert.equal(out.method, 'GET');
    assert.equal(out.path, '/hello/world');
    assert.deepEqual(out.query, { x: '1' });
    await client.deleteTrigger(name, 'web');
  }));

  test('asynchronous tasks: invoke, get, list, stop', withLogs(async () => {
    const { functionName: name } = await newFunction('async');
    const config = (await client.putAsyncInvokeConfig(name, new fc3.PutAsyncInvokeConfigRequest({
      body: new fc3.PutAsyncInvokeConfigInput({ asyncTask: true, maxAsyncRetryAttempts: 0 }),
    }))).body;
    assert.equal(config.asyncTask, true);
    assert.equal(config.maxAsyncRetryAttempts, 0);
    assert.equal(config.functionArn, `acs:fc:${REGION}:${ACCOUNT_ID}:functions/${name}`);
    assert.equal((await client.getAsyncInvokeConfig(name, new fc3.GetAsyncInvokeConfigRequest({}))).body.asyncTask, true);
    const listed = (await client.listAsyncInvokeConfigs(new fc3.ListAsyncInvokeConfigsRequest({ functionName: name }))).body;
    assert.deepEqual(listed.configs.map((c) => c.functionArn), [config.functionArn]);

    const done = 'task_done_' + unique('t').slice(3);
    let r = await invoke(name, 'quick', { type: 'Async', taskId: done });
    assert.equal(r.status, 202, r.text);
    assert.match(r.headers['x-fc-request-id'], FC3_REQUEST_ID);
    const finished = await waitForTask(name, done, (s) => ['Succeeded', 'Failed'].includes(s));
    assert.equal(finished.status, 'Succeeded', JSON.stringify(finished));
    assert.equal(finished.taskId, done);
    assert.equal(finished.taskPayload, 'quick');
    assert.deepEqual(JSON.parse(finished.returnPayload), { code: 'async', event: 'quick' });

    const slow = 'task_slow_' + unique('t').slice(3);
    r = await invoke(name, 'sleep', { type: 'Async', taskId: slow });
    assert.equal(r.status, 202, r.text);
    await waitForTask(name, slow, (s) => s === 'Running');
    await client.stopAsyncTask(name, slow, new fc3.StopAsyncTaskRequest({}));
    const stopped = await waitForTask(name, slow, (s) => s === 'Stopped');
    assert.equal(stopped.status, 'Stopped');

    const tasks = (await client.listAsyncTasks(name, new fc3.ListAsyncTasksRequest({ limit: 10 }))).body.tasks;
    assert.deepEqual(tasks.map((t) => t.taskId).sort(), [done, slow].sort());
    await rejectsWithStatus(client.getAsyncTask(name, 'no_such_task', new fc3.GetAsyncTaskRequest({})), 404);
  }));

  async function waitForTask(name, taskId, ready) {
    const deadline = Date.now() + WAIT_MS;
    let last = null;
    while (Date.now() < deadline) {
      try {
        last = (await client.getAsyncTask(name, taskId, new fc3.GetAsyncTaskRequest({}))).body;
        if (ready(last.status)) return last;
      } catch (err) {
        // not recorded yet
        last = err.message;
      }
      await sleep(200);
    }
    throw new Error(`task ${taskId} never got there: ${JSON.stringify(last)}`);
  }

  test('provision and concurrency configs', withLogs(async () => {
    const { functionName: name, functionArn } = await newFunction('configs');
    await client.publishFunctionVersion(name, new fc3.PublishFunctionVersionRequest({ body: new fc3.PublishVersionInput({}) }));
    await client.createAlias(name, new fc3.CreateAliasRequest({
      body: new fc3.CreateAliasInput({ aliasName: 'prod', versionId: '1' }),
    }));

    const concurrency = (await client.putConcurrencyConfig(name, new fc3.PutConcurrencyConfigRequest({
      body: new fc3.PutConcurrencyInput({ reservedConcurrency: 5 }),
    }))).body;
    assert.equal(concurrency.functionArn, functionArn);
    assert.equal(concurrency.reservedConcurrency, 5);
    assert.equal((await client.getConcurrencyConfig(name)).body.reservedConcurrency, 5);
    const allConcurrency = (await client.listConcurrencyConfigs(new fc3.ListConcurrencyConfigsRequest({ functionName: name }))).body;
    assert.deepEqual(allConcurrency.configs.map((c) => c.reservedConcurrency), [5]);
    await client.deleteConcurrencyConfig(name);
    await rejectsWithStatus(client.getConcurrencyConfig(name), 404);

    const provision = (await client.putProvisionConfig(name, new fc3.PutProvisionConfigRequest({
      qualifier: 'prod',
      body: new fc3.PutProvisionConfigInput({ defaultTarget: 1 }),
    }))).body;
    assert.equal(provision.defaultTarget, 1);
    assert.equal(provision.functionArn, functionArn);
    const got = (await client.getProvisionConfig(name, new fc3.GetProvisionConfigRequest({ qualifier: 'prod' }))).body;
    assert.equal(got.defaultTarget, 1);
    const all = (await client.listProvisionConfigs(new fc3.ListProvisionConfigsRequest({ functionName: name }))).body;
    assert.deepEqual(all.provisionConfigs.map((p) => p.defaultTarget), [1]);
    await client.deleteProvisionConfig(name, new fc3.DeleteProvisionConfigRequest({ qualifier: 'prod' }));
  }));

  test('a function imports a module from its layer', withLogs(async () => {
    const layerName = unique('lib');
    const layer = (await client.createLayerVersion(layerName, new fc3.CreateLayerVersionRequest({
      body: new fc3.CreateLayerVersionInput({
        code: new fc3.InputCodeLocation({
          zipFile: makeZip({ 'python/greet.py': "def hello():\n    return 'hello from the layer'\n" }).toString('base64'),
        }),
        compatibleRuntime: ['python3.10'],
        description: 'greeting',
      }),
    }))).body;
    layers.push([layerName, layer.version]);
    assert.equal(layer.layerName, layerName);
    assert.equal(layer.version, 1);
    assert.equal(layer.layerVersionArn, `acs:fc:${REGION}:${ACCOUNT_ID}:layers/${layerName}/versions/1`);
    const byArn = (await client.getLayerVersionByArn(layer.layerVersionArn)).body;
    assert.equal(byArn.layerName, layerName);
    assert.equal(byArn.version, 1);

    const fn = await newFunction('layered', { layers: [layer.layerVersionArn] });
    assert.deepEqual(fn.layers.map((l) => l.arn), [layer.layerVersionArn]);
    const { out } = await invokeJson(fn.functionName, 'layer');
    assert.deepEqual(out, { code: 'layered', layer: 'hello from the layer' });
  }));
});
