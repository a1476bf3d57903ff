// What the Node SDK tests share: a real `fcd serve` started as tests/sdk/fcdkit.py starts it
// (see tests/sdk/README.md), and the ZIPs and names the tests build.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

export const ACCESS_KEY_ID = 'testAccessKeyId';
export const ACCESS_KEY_SECRET = 'testAccessKeySecret';
export const ACCOUNT_ID = '1234567890123456';
export const REGION = 'cn-hangzhou';
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 15_000;
const LOG_TAIL_CHARS = 20_000;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------------------------

export class FcdServer {
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
export function makeZip(files) {
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

export function unique(prefix) {
  return `${prefix}-${randomUUID().replace(/-/g, '').slice(0, 12)}`;
}
