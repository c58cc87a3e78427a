import fs from 'node:fs/promises';
import { expect } from 'chai';
import { request, tus } from './helpers/http.js';
import { spawnServer, type ServerProcess } from './helpers/process.js';
import { makeDataDir, signToken } from './helpers/server.js';
import { MP4, mp4OfSize } from './samples.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 30);
const CONCURRENCY = 200;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function openFds(pid: number): Promise<number> {
  return (await fs.readdir(`/proc/${pid}/fd`)).length;
}
async function rssMiB(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/**
 * The process's memory once it has had time to give back what it no longer uses: the lowest RSS
 * seen within `ms`, stopping early once it is below `enough`. Right after a load V8 may still hold
 * garbage it collects only when idle, which a busy machine delays; a leak does not go away waiting.
 */
async function settledRssMiB(pid: number, enough: number, ms = 10_000): Promise<number> {
  let lowest = await rssMiB(pid);
  for (const deadline = Date.now() + ms; lowest >= enough && Date.now() < deadline; ) {
    await sleep(500);
    lowest = Math.min(lowest, await rssMiB(pid));
  }
  return lowest;
}

describe(`soak: ${CONCURRENCY} concurrent uploads for ${SECONDS} s`, function () {
  this.timeout((SECONDS + 100) * 1000);
  let dataDir: string;
  let server: ServerProcess;
  before(async () => {
    dataDir = await makeDataDir();
    server = await spawnServer({ DATA_DIR: dataDir, MAX_ACTIVE_UPLOADS_PER_USER: '100000', UPLOADS_PER_HOUR_PER_USER: '1000000' });
  });
  after(async () => {
    await server.kill();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('completes every upload without error and leaks no descriptors, locks or memory', async () => {
    const pid = server.child.pid!;
    const warm = tus(server.url, await signToken('warm'));
    const w = await warm.create(MP4.length, { filetype: 'video/mp4' });
    await warm.patch(w.headers.location!, 0, MP4);
    await sleep(500);
    const idleFds = await openFds(pid);
    const idleRss = await rssMiB(pid);

    const failures: string[] = [];
    const finished: Array<{ location: string; user: string }> = [];
    let peakRss = idleRss;
    const sampler = setInterval(() => void rssMiB(pid).then((rss) => (peakRss = Math.max(peakRss, rss)), () => undefined), 200);
    const body = mp4OfSize(256 * 1024);
    /** One phase of load: CONCURRENCY clients uploading back to back for `seconds`. */
    const load = (seconds: number) => {
      const deadline = Date.now() + seconds * 1000;
      return Promise.all(
        Array.from({ length: CONCURRENCY }, async (_, worker) => {
          const user = `user-${worker % 20}`;
          const client = tus(server.url, await signToken(user));
          while (Date.now() < deadline) {
            const created = await client.create(body.length, { filetype: 'video/mp4' });
            if (created.status !== 201) {
              failures.push(`POST ${created.status} ${created.text}`);
              return;
            }
            const location = created.headers.location!;
            for (let offset = 0; offset < body.length; offset += 64 * 1024) {
              const res = await client.patch(location, offset, body.subarray(offset, offset + 64 * 1024));
              if (res.status !== 204) {
                failures.push(`PATCH ${res.status} ${res.text}`);
                return;
              }
            }
            finished.push({ location, user });
          }
        }),
      );
    };
    // Two phases: the first grows the heap to its working size, and a leak shows as the second
    // leaving more memory and descriptors behind than the first did.
    await load(SECONDS / 2);
    await sleep(2000);
    const afterFirst = { fds: await openFds(pid), rss: await rssMiB(pid) };
    await load(SECONDS / 2);
    clearInterval(sampler);
    expect(failures).to.deep.equal([]);
    expect(finished.length).to.be.greaterThan(CONCURRENCY);

    // Every lock is free: a tus HEAD (which takes the upload's lock) of any upload answers at once,
    // and the download of each is complete.
    const sample = finished.filter((_, i) => i % Math.ceil(finished.length / 50) === 0);
    const started = Date.now();
    for (const { location, user } of sample) {
      const head = await tus(server.url, await signToken(user)).head(location);
      expect(head.status).to.equal(200);
      expect(head.headers['upload-offset']).to.equal(String(body.length));
      expect((await request(location)).body.equals(body)).to.equal(true);
    }
    expect(Date.now() - started).to.be.below(10_000);

    await sleep(2000);
    const fds = await openFds(pid);
    const rss = await settledRssMiB(pid, afterFirst.rss + 40);
    process.stdout.write(
      `      soak: ${finished.length} uploads, fds ${idleFds} → ${afterFirst.fds} → ${fds}, RSS idle ${idleRss.toFixed(0)} MiB, ` +
        `after phase 1 ${afterFirst.rss.toFixed(0)} MiB, peak ${peakRss.toFixed(0)} MiB, after phase 2 ${rss.toFixed(0)} MiB\n`,
    );
    expect(afterFirst.fds).to.be.at.most(idleFds + 5);
    expect(fds).to.be.at.most(idleFds + 5);
    expect(rss, 'memory left after the second phase').to.be.below(afterFirst.rss + 40);
    expect(peakRss).to.be.below(idleRss + 250);
  });
});
