import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { JsonDirectory, lastVersion } from '../server/storage/json-dir.js';

interface Doc {
  n: number;
  text?: string;
}

describe('JsonDirectory: documents kept by appending versions', () => {
  let dir: string;
  let docs: JsonDirectory<Doc>;
  const fileOf = (key: string) => path.join(dir, `${key}.json`);

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-docs-'));
    docs = new JsonDirectory<Doc>(dir);
    await docs.init();
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('reads back the last version written, and nothing once deleted', async () => {
    expect(await docs.get('a')).to.equal(undefined);
    await docs.set('a', { n: 1 });
    await docs.set('a', { n: 2, text: 'line\nbreak {"n": 9}' });
    await docs.set('b', { n: 3 });
    expect(await docs.get('a')).to.deep.equal({ n: 2, text: 'line\nbreak {"n": 9}' });
    expect((await docs.keys()).sort()).to.deep.equal(['a', 'b']);
    await docs.delete('a');
    expect(await docs.get('a')).to.equal(undefined);
    expect(await docs.keys()).to.deep.equal(['b']);
  });

  it('passes over a version cut short by a crash, also when more versions follow it', async () => {
    await docs.set('a', { n: 1 });
    // What a process killed in the middle of an append leaves: part of a version, no newline after it.
    await fs.appendFile(fileOf('a'), '\n{"n":2,"te');
    expect(await docs.get('a')).to.deep.equal({ n: 1 });
    await docs.set('a', { n: 3 });
    expect(await docs.get('a')).to.deep.equal({ n: 3 });
    // Zeros where the file system had not written the data yet.
    await fs.appendFile(fileOf('a'), Buffer.alloc(40));
    expect(await docs.get('a')).to.deep.equal({ n: 3 });
  });

  it('has no document while the first version is incomplete', async () => {
    await fs.writeFile(fileOf('a'), '\n{"n":1');
    expect(await docs.get('a')).to.equal(undefined);
    expect(lastVersion('')).to.equal(undefined);
    expect(lastVersion('\n\n')).to.equal(undefined);
  });

  it('reads a file holding a single document without newlines, as earlier versions wrote them', async () => {
    await fs.writeFile(fileOf('a'), JSON.stringify({ n: 7 }));
    expect(await docs.get('a')).to.deep.equal({ n: 7 });
    await docs.set('a', { n: 8 });
    expect(await docs.get('a')).to.deep.equal({ n: 8 });
  });

  it('keeps the file small: many writes leave it holding a bounded number of versions', async () => {
    for (let n = 0; n < 500; n++) await docs.set('a', { n, text: 'x'.repeat(100) });
    expect(await docs.get('a')).to.deep.equal({ n: 499, text: 'x'.repeat(100) });
    const versions = (await fs.readFile(fileOf('a'), 'utf8')).split('\n').filter((line) => line.trim() !== '');
    expect(versions.length).to.be.within(1, 65);
    // No temporary file is left behind by the rewrites.
    expect(await fs.readdir(dir)).to.deep.equal(['a.json']);
  });

  it('keeps the file of a large document small too: at most about 256 KiB of versions', async () => {
    // A legacy session's chunk list grows with each chunk; each read takes in the whole file.
    for (let n = 0; n < 60; n++) await docs.set('big', { n, text: 'x'.repeat(20_000) });
    expect((await docs.get('big'))?.n).to.equal(59);
    expect((await fs.stat(fileOf('big'))).size).to.be.at.most(256 * 1024 + 20_100);
  });

  it('keeps the last of writes made at once to one document, across rewrites of its file', async () => {
    await Promise.all(Array.from({ length: 300 }, (_, n) => docs.set('a', { n })));
    expect(await docs.get('a')).to.deep.equal({ n: 299 });
  });

  it('does not bring back a document deleted while a write to it was still queued', async () => {
    await docs.set('a', { n: 1 });
    const writes = Array.from({ length: 20 }, (_, n) => docs.set('a', { n }));
    await docs.delete('a');
    await Promise.all(writes);
    expect(await docs.get('a')).to.equal(undefined);
  });

  it('refuses keys that are not server-made ids', async () => {
    expect(await docs.get('../a')).to.equal(undefined);
    let refused = false;
    await docs.set('../a', { n: 1 }).catch(() => (refused = true));
    expect(refused).to.equal(true);
  });
});
