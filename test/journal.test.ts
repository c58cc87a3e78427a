import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Journal } from '../server/storage/journal.js';
import { UploadRecords, type UploadRecord } from '../server/uploads/records.js';
import { request, tus } from './helpers/http.js';
import { makeDataDir, startServer } from './helpers/server.js';
import { TEXT } from './samples.js';

interface Doc {
  n: number;
  text?: string;
}

describe('Journal: documents as lines of one append-only file', () => {
  let dir: string;
  let file: string;
  let journal: Journal<Doc>;
  const reopen = async () => {
    await journal.close();
    journal = new Journal<Doc>(file);
    await journal.init();
  };

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-journal-'));
    file = path.join(dir, 'journal.jsonl');
    journal = new Journal<Doc>(file);
    await journal.init();
  });
  afterEach(async () => {
    await journal.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads back the newest version of each key, after a restart too, and nothing once deleted', async () => {
    expect(await journal.get('a')).to.equal(undefined);
    await journal.set('a', { n: 1 });
    await journal.set('a', { n: 2, text: 'line\nbreak {"k":"b","v":{"n":9}} ünïcode' });
    await journal.set('b', { n: 3 });
    await journal.set('c', { n: 4 });
    await journal.delete('c');
    await journal.delete('never-there');
    const expected = async () => {
      expect(await journal.get('a')).to.deep.equal({ n: 2, text: 'line\nbreak {"k":"b","v":{"n":9}} ünïcode' });
      expect(await journal.get('b')).to.deep.equal({ n: 3 });
      expect(await journal.get('c')).to.equal(undefined);
      expect((await journal.keys()).sort()).to.deep.equal(['a', 'b']);
    };
    await expected();
    await reopen();
    await expected();
  });

  it('keeps the order of changes made at once: the last one asked for wins', async () => {
    await Promise.all(Array.from({ length: 50 }, (_, n) => journal.set('a', { n })));
    const deleted = journal.delete('a');
    const last = journal.set('a', { n: 99 });
    await Promise.all([deleted, last]);
    expect(await journal.get('a')).to.deep.equal({ n: 99 });
    await reopen();
    expect(await journal.get('a')).to.deep.equal({ n: 99 });
  });

  it('passes over a version cut short by a crash, and appends after it', async () => {
    await journal.set('a', { n: 1 });
    await journal.close();
    // What a process killed in the middle of a write leaves: part of a line, no newline after it.
    await fs.appendFile(file, '\n{"k":"a","v":{"n":2,"te');
    journal = new Journal<Doc>(file);
    await journal.init();
    expect(await journal.get('a')).to.deep.equal({ n: 1 });
    await journal.set('b', { n: 3 });
    await reopen();
    expect(await journal.get('a')).to.deep.equal({ n: 1 });
    expect(await journal.get('b')).to.deep.equal({ n: 3 });
  });

  it('undoes a write that failed part-way (a full disk): a refused change never counts after a restart', async () => {
    await journal.set('a', { n: 1 });
    // A FileHandle whose next write stores all but the last byte, and the one after fails as on a full disk.
    const handle = await fs.open(file, 'r');
    const prototype = Object.getPrototypeOf(handle) as { write: (bytes: Buffer, offset: number, length: number, position: number) => Promise<unknown> };
    await handle.close();
    const write = prototype.write;
    let failing = 2;
    prototype.write = async function (this: unknown, bytes: Buffer, offset: number, length: number, position: number) {
      if (failing === 2) {
        failing = 1;
        return write.call(this, bytes, offset, length - 1, position);
      }
      if (failing === 1) {
        failing = 0;
        throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      }
      return write.call(this, bytes, offset, length, position);
    };
    try {
      await journal.delete('a').then(
        () => expect.fail('the delete was acknowledged'),
        (error: NodeJS.ErrnoException) => expect(error.code).to.equal('ENOSPC'),
      );
    } finally {
      prototype.write = write;
    }
    await journal.set('b', { n: 2 });
    expect(await journal.get('a')).to.deep.equal({ n: 1 });
    await reopen();
    expect(await journal.get('a')).to.deep.equal({ n: 1 });
    expect(await journal.get('b')).to.deep.equal({ n: 2 });
  });

  it('rewrites itself with current versions once mostly stale, reads going on meanwhile', async () => {
    const text = 'x'.repeat(20_000);
    for (let round = 0; round < 150; round++) {
      await Promise.all(['a', 'b', 'c'].map((key, i) => journal.set(key, { n: round * 3 + i, text })));
      // Reads while changes (and a rewrite) are under way see a complete version.
      const read = await journal.get('a');
      expect(read?.n).to.be.a('number');
    }
    await journal.delete('b');
    const { size } = await fs.stat(file);
    // 450 versions of 20 kB were written; without rewriting the file would hold all of them.
    expect(size).to.be.below(4 * 1024 * 1024 + 5 * 20_100);
    const expected = async () => {
      expect(await journal.get('a')).to.deep.equal({ n: 447, text });
      expect(await journal.get('b')).to.equal(undefined);
      expect(await journal.get('c')).to.deep.equal({ n: 449, text });
    };
    await expected();
    await reopen();
    await expected();
    expect(await fs.readdir(dir)).to.deep.equal(['journal.jsonl']);
  });

  it('shows every version and removal to a visitor as it opens, in the order written', async () => {
    await journal.set('a', { n: 1 });
    await journal.set('b', { n: 2 });
    await journal.set('a', { n: 3 });
    await journal.delete('b');
    await journal.close();
    const seen: Array<[string, Doc | undefined]> = [];
    journal = new Journal<Doc>(file);
    await journal.init((key, doc) => seen.push([key, doc]));
    expect(seen).to.deep.equal([['a', { n: 1 }], ['b', { n: 2 }], ['a', { n: 3 }], ['b', undefined]]);
  });

  it('takes in the documents of a directory of one file per document, and removes the files', async () => {
    await journal.close();
    const former = path.join(dir, 'records');
    await fs.mkdir(former);
    await fs.writeFile(path.join(former, 'a.json'), '{"n":1}');
    await fs.writeFile(path.join(former, 'b.json'), '\n{"n":2}\n\n{"n":3}\n');
    journal = new Journal<Doc>(file, former);
    const seen = new Map<string, Doc | undefined>();
    await journal.init((key, doc) => seen.set(key, doc));
    expect(Object.fromEntries(seen)).to.deep.equal({ a: { n: 1 }, b: { n: 3 } });
    expect(await journal.get('a')).to.deep.equal({ n: 1 });
    expect(await journal.get('b')).to.deep.equal({ n: 3 });
    expect(await fs.readdir(former)).to.deep.equal([]);
    await reopen();
    expect(await journal.get('b')).to.deep.equal({ n: 3 });
  });

  it('refuses a key that is not a server-made id', async () => {
    for (const key of ['../x', 'a/b', '', 'a b', 'x'.repeat(129)]) {
      await journal.set(key, { n: 1 }).then(
        () => expect.fail(`accepted ${JSON.stringify(key)}`),
        (error: Error) => expect(error.message).to.match(/unsafe key/),
      );
    }
    expect(await journal.keys()).to.deep.equal([]);
  });
});

describe('a data directory of an older tusgate (a record file and an info file per upload)', function () {
  this.timeout(30_000);

  it('is taken in at start-up: finished and unfinished uploads go on as before, and the files are gone', async () => {
    const dataDir = await makeDataDir();
    try {
      let server = await startServer({ DATA_DIR: dataDir });
      const token = await server.token('alice');
      let client = tus(server.url, token);
      const doneId = (await client.create(TEXT.length)).headers.location!.split('/').pop()!;
      expect((await client.patch(`${server.url}/files/${doneId}`, 0, TEXT)).status).to.equal(204);
      const halfId = (await client.create(TEXT.length)).headers.location!.split('/').pop()!;
      expect((await client.patch(`${server.url}/files/${halfId}`, 0, TEXT.subarray(0, 50))).status).to.equal(204);
      await server.close();

      // Lay the journals' documents out as an older tusgate kept them, one file each, and drop the journals.
      for (const [journalFile, directory] of [
        ['records/journal.jsonl', 'records'],
        ['upload-info/journal.jsonl', 'uploads'],
      ] as const) {
        const journal = new Journal<unknown>(path.join(dataDir, journalFile));
        await journal.init();
        for (const id of await journal.keys()) await fs.writeFile(path.join(dataDir, directory, `${id}.json`), JSON.stringify(await journal.get(id)));
        await journal.close();
        await fs.rm(path.join(dataDir, journalFile));
      }

      server = await startServer({ DATA_DIR: dataDir });
      client = tus(server.url, token);
      const [done, half] = [doneId, halfId].map((id) => `${server.url}/files/${id}`) as [string, string];
      expect((await request(done)).text).to.equal(TEXT.toString());
      expect(JSON.parse((await request(`${done}/info`, { headers: { Authorization: `Bearer ${token}` } })).text)).to.include({ state: 'complete' });
      expect((await client.head(half)).headers['upload-offset']).to.equal('50');
      expect((await client.patch(half, 50, TEXT.subarray(50))).status).to.equal(204);
      expect((await request(half)).text).to.equal(TEXT.toString());
      expect((await tus(server.url, await server.token('bob')).head(done)).status).to.equal(404);
      await server.close();
      for (const directory of ['records', 'uploads']) {
        expect((await fs.readdir(path.join(dataDir, directory))).filter((name) => name.endsWith('.json'))).to.deep.equal([]);
      }
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a data directory without REDIS_URL is one process’s', () => {
  it('refuses to start on a directory that a running process of this host holds, and takes over a stale mark or a gone holder', async () => {
    const dataDir = await makeDataDir();
    try {
      await fs.writeFile(path.join(dataDir, 'owner'), `${os.hostname()} ${process.ppid}\n`);
      await startServer({ DATA_DIR: dataDir }).then(
        async (server) => {
          await server.close();
          expect.fail('started on a directory in use');
        },
        (error: Error) => expect(error.message).to.match(new RegExp(`in use by process ${process.ppid} .*REDIS_URL`)),
      );
      // A mark not touched for a minute: its process is gone, whatever has its pid now.
      const aMinuteAgo = new Date(Date.now() - 60_000);
      await fs.utimes(path.join(dataDir, 'owner'), aMinuteAgo, aMinuteAgo);
      let server = await startServer({ DATA_DIR: dataDir });
      expect(await fs.readFile(path.join(dataDir, 'owner'), 'utf8')).to.match(new RegExp(`^${os.hostname()} ${process.pid} [0-9a-f]{16}\n$`));
      await server.close();
      // A pid that no process has: the holder is gone.
      await fs.writeFile(path.join(dataDir, 'owner'), `${os.hostname()} 4194000 0123456789abcdef\n`);
      server = await startServer({ DATA_DIR: dataDir });
      await server.close();
      expect((await fs.readdir(dataDir)).includes('owner')).to.equal(false);
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });

  it('lets exactly one of two processes that start at the same moment have the directory (5 rounds)', async function () {
    this.timeout(60_000);
    for (let round = 0; round < 5; round++) {
      const dataDir = await makeDataDir();
      const at = String(Date.now() + 2_500);
      const children = [0, 1].map(() => spawn(process.execPath, ['--import', 'tsx', 'test/helpers/claim-directory.ts', dataDir, at], { stdio: ['ignore', 'pipe', 'inherit'] }));
      try {
        const answers = await Promise.all(
          children.map(
            (child) =>
              new Promise<string>((resolve) => {
                let text = '';
                child.stdout.on('data', (chunk: Buffer) => {
                  text += chunk.toString();
                  if (text.includes('\n')) resolve(text.trim());
                });
              }),
          ),
        );
        expect(answers.filter((answer) => answer === 'claimed'), answers.join(' | ')).to.have.length(1);
        expect(answers.filter((answer) => answer.startsWith('refused')).join()).to.match(/in use by process \d+ .*REDIS_URL/);
      } finally {
        for (const child of children) child.kill('SIGKILL');
        await fs.rm(dataDir, { recursive: true, force: true });
      }
    }
  });
});

describe('UploadRecords over a journal: the records the expiry sweep reads', () => {
  const record = (id: string, state: UploadRecord['state'], concat?: string): UploadRecord => ({
    id, owner: 'alice', origin: 'tus', createdAt: new Date(0).toISOString(), lastWriteAt: new Date(0).toISOString(), state, concat,
  });

  it('are the unfinished uploads and the parts of concatenations, kept as records change and rebuilt at start-up', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-records-'));
    const file = path.join(dir, 'journal.jsonl');
    let journal = new Journal<UploadRecord>(file);
    let records = new UploadRecords(journal, 100);
    const candidates = async () => (await records.expiryCandidates()).map((r) => r.id).sort();
    try {
      await records.init();
      await records.set(record('uploading', 'uploading'));
      await records.set(record('stored', 'stored'));
      await records.set(record('done', 'uploading'));
      await records.set(record('done', 'complete'));
      await records.set(record('part', 'complete', 'partial'));
      await records.set(record('gone', 'uploading'));
      await records.delete('gone');
      for (let i = 0; i < 50; i++) await records.set(record(`file${i}`, 'complete'));
      expect(await candidates()).to.deep.equal(['part', 'stored', 'uploading']);
      await journal.close();
      journal = new Journal<UploadRecord>(file);
      records = new UploadRecords(journal, 100);
      await records.init();
      expect(await candidates()).to.deep.equal(['part', 'stored', 'uploading']);
      expect(await records.all()).to.have.length(54);
      // Without a cache (several processes share the records) every record is a candidate.
      expect((await new UploadRecords(journal, 0).expiryCandidates()).length).to.equal(54);
    } finally {
      await journal.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('never caches what a read found while a change of the same record was being written', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-records-'));
    const journal = new Journal<UploadRecord>(path.join(dir, 'journal.jsonl'));
    const records = new UploadRecords(journal, 100);
    try {
      await records.init();
      await records.set(record('a', 'uploading'));
      // A read that starts while the delete is written misses the cache and finds the record still
      // in the journal...
      const deleting = records.delete('a');
      const during = records.get('a');
      await Promise.all([deleting, during]);
      // ...but once the delete is done, the record is gone, also for the cache.
      expect(await records.get('a')).to.equal(undefined);
    } finally {
      await journal.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
