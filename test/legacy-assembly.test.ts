import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { appendReady } from '../server/legacy/assembly.js';
import type { LegacySession } from '../server/legacy/sessions.js';
import { Staging } from '../server/legacy/staging.js';
import type { VerifyingStore } from '../server/uploads/verifying-store.js';

/** The files this process holds open, by path. */
async function openFiles(): Promise<string[]> {
  const fds = await fs.readdir('/proc/self/fd');
  const targets = await Promise.all(fds.map((fd) => fs.readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter(Boolean);
}

describe('legacy assembly (server/legacy/assembly.ts)', () => {
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-assembly-'));
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('closes a staged chunk the store refused without reading it (an upload removed meanwhile)', async () => {
    const staging = new Staging(root);
    await staging.init();
    const id = '0f8fad5b-d9cb-469f-a165-70867728950e';
    const temporary = await staging.temporaryPath(id, 0);
    await fs.writeFile(temporary, Buffer.alloc(100, 1));
    await staging.promote(temporary, id, 0);
    const gone = Object.assign(new Error('the upload is gone'), { status_code: 404 });
    const store = {
      getUpload: async () => ({ offset: 0 }),
      write: async () => {
        throw gone;
      },
    } as unknown as VerifyingStore;
    const session = { session_id: id, file_size: 100, chunk_size: 100, total_chunks: 1 } as LegacySession;

    const error = await appendReady(store, staging, session).then(() => undefined, (e: unknown) => e);
    expect(error).to.equal(gone);
    // The read stream opens its file on the next turns of the event loop, then is closed.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await openFiles()).to.not.include(staging.chunkPath(id, 0));
  });
});
