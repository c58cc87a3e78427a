import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Journal } from '../server/storage/journal.js';

const ROUNDS = 12;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Journal: kill -9 at random points', function () {
  this.timeout(120_000);

  it(`keeps every acknowledged change and a complete document per key, ${ROUNDS} rounds, through rewrites`, async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tusgate-journal-crash-'));
    const file = path.join(dir, 'journal.jsonl');
    let next = 0;
    let rewrites = 0;
    let previousSize = 0;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/journal-writer.ts', file, String(next)], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const acknowledged = new Map<string, number>();
        let output = '';
        let ready = false;
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (text: string) => {
          output += text;
          const lines = output.split('\n');
          output = lines.pop()!;
          for (const line of lines) {
            if (line === 'ready') ready = true;
            const [key, n] = line.split(' ');
            if (n !== undefined) acknowledged.set(key!, Number(n));
          }
        });
        const exited = new Promise((resolve) => child.once('exit', resolve));
        while (!ready) await sleep(5);
        await sleep(50 + Math.random() * 400);
        child.kill('SIGKILL');
        await exited;

        const journal = new Journal<{ n: number; filler: string }>(file);
        await journal.init();
        for (const [key, n] of acknowledged) {
          for (const i of [0, 1, 2]) {
            const document = await journal.get(`${key}-${i}`);
            // The last acknowledged version, or a later one that was written but not yet acknowledged.
            expect(document?.n, `${key}-${i} in round ${round}`).to.be.at.least(n);
            expect(document!.filler).to.have.length(20_000);
          }
        }
        next = Math.max(next, ...acknowledged.values()) + 1_000;
        await journal.close();
        const { size } = await fs.stat(file);
        if (size < previousSize) rewrites++;
        previousSize = size;
      }
      // 15 documents of 20 kB: the journal is rewritten every few hundred changes, so rounds were killed
      // between rewrites, and some (at random) during one.
      expect(rewrites).to.be.greaterThan(0);
      expect(await fs.readdir(dir)).to.deep.equal(['journal.jsonl']);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
