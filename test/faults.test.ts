import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { openPatch, request, tus } from './helpers/http.js';
import { spawnServer, type ServerProcess } from './helpers/process.js';
import { makeDataDir, signToken, startServer, type TestServer } from './helpers/server.js';
import { TEXT } from './samples.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('faults', function () {
  this.timeout(60_000);

  describe('a full disk', () => {
    let mount: string;
    let server: TestServer;
    before(async () => {
      // A real, small filesystem: tusgate must meet a real ENOSPC, not a simulated one.
      mount = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-full-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mount]);
      server = await startServer({ DATA_DIR: mount });
    });
    after(async () => {
      await server.close();
      execFileSync('umount', [mount]);
      await fs.rm(mount, { recursive: true, force: true });
    });

    it('answers 507, keeps what was stored, and resumes once there is room', async () => {
      const client = tus(server.url, await server.token('alice'));
      const file = Buffer.from('all work and no play makes a full disk\n'.repeat(40_000)); // ~1.5 MiB
      const created = await client.create(file.length, { filetype: 'text/plain' });
      expect(created.status).to.equal(201);
      const location = created.headers.location!;
      const id = location.split('/').pop()!;
      const filler = path.join(mount, 'filler');
      const free = Number(execFileSync('df', ['--output=avail', '-B1', mount]).toString().split('\n')[1]);
      await fs.writeFile(filler, Buffer.alloc(free - 512 * 1024));

      const full = await client.patch(location, 0, file);
      expect(full.status, full.text).to.be.oneOf([507, 503]);
      const head = await client.head(location);
      expect(head.status).to.equal(200);
      const offset = Number(head.headers['upload-offset']);
      const stored = (await fs.stat(path.join(mount, 'uploads', id))).size;
      expect(offset).to.equal(stored);
      expect(offset).to.be.below(file.length);

      const creation = await client.create(TEXT.length);
      expect(creation.status).to.be.oneOf([201, 507, 503]);

      await fs.rm(filler);
      const resumed = await client.patch(location, offset, file.subarray(offset));
      expect(resumed.status, resumed.text).to.equal(204);
      expect((await request(location)).body.equals(file)).to.equal(true);
    });
  });

  describe('a stalled client', () => {
    let dataDir: string;
    let server: ServerProcess;
    before(async () => {
      dataDir = await makeDataDir();
      server = await spawnServer({ DATA_DIR: dataDir, REQUEST_IDLE_TIMEOUT_MS: '1000' });
    });
    after(async () => {
      await server.kill();
      await fs.rm(dataDir, { recursive: true, force: true });
    });

    it('is cut off after the idle timeout without holding the upload lock', async () => {
      const token = await signToken('alice');
      const client = tus(server.url, token);
      const location = (await client.create(TEXT.length)).headers.location!;
      // Headers and a few bytes, then nothing: a slow-loris PATCH.
      const stalled = openPatch(location, token, 0, TEXT.length);
      const closed = new Promise<number>((resolve) => {
        const started = Date.now();
        stalled.on('close', () => resolve(Date.now() - started));
        stalled.on('error', () => undefined);
      });
      stalled.write(TEXT.subarray(0, 10));
      const elapsed = await Promise.race([closed, sleep(10_000).then(() => -1)]);
      expect(elapsed, 'server closed the stalled connection').to.be.within(500, 5000);

      const started = Date.now();
      const head = await client.head(location);
      const offset = Number(head.headers['upload-offset']);
      expect(offset).to.be.within(0, 10);
      const rest = await client.patch(location, offset, TEXT.subarray(offset));
      expect(rest.status).to.equal(204);
      expect(Date.now() - started, 'the lock was free at once').to.be.below(2000);
      expect((await request(location)).body.equals(TEXT)).to.equal(true);
    });

    it('keeps every byte a PATCH delivered before it stalled or its client went away', async () => {
      const token = await signToken('bob');
      const client = tus(server.url, token);
      const file = Buffer.concat(Array.from({ length: Math.ceil((400 * 1024) / TEXT.length) }, () => TEXT)).subarray(0, 400 * 1024);
      const location = (await client.create(file.length)).headers.location!;
      const offsetNow = async () => Number((await client.head(location)).headers['upload-offset']);
      // Neither piece is a whole number of socket reads or of the store's write batches.
      const stalledAt = 150 * 1024 + 7;
      const stalled = openPatch(location, token, 0, file.length);
      const stalledClosed = new Promise((resolve) => stalled.on('close', resolve));
      stalled.on('error', () => undefined);
      stalled.write(file.subarray(0, stalledAt));
      await Promise.race([stalledClosed, sleep(10_000)]);
      expect(await offsetNow(), 'offset after the idle timeout').to.equal(stalledAt);

      const goneAt = stalledAt + 100 * 1024 + 3;
      const gone = openPatch(location, token, stalledAt, file.length - stalledAt);
      gone.on('error', () => undefined);
      gone.write(file.subarray(stalledAt, goneAt));
      await sleep(300);
      gone.destroy();
      let offset = stalledAt;
      for (let i = 0; i < 50 && offset !== goneAt; i++, await sleep(20)) offset = await offsetNow();
      expect(offset, 'offset after the client went away').to.equal(goneAt);

      expect((await client.patch(location, goneAt, file.subarray(goneAt))).status).to.equal(204);
      expect((await request(location)).body.equals(file)).to.equal(true);
    });
  });
});
