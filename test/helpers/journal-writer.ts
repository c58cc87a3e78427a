// Child process for test/journal-crash.test.ts: changes documents of a Journal as fast as it can and
// prints a line for every change once its promise has resolved (acknowledged), until it is killed.
// Every document carries a 20 kB filler, so that the journal is rewritten (compacted) every few hundred
// changes and a kill can land in the middle of a rewrite too.
import fs from 'node:fs';
import { Journal } from '../../server/storage/journal.js';

const [file, startText] = process.argv.slice(2);
const filler = 'f'.repeat(20_000);
const journal = new Journal<{ n: number; filler: string }>(file!);
await journal.init();
fs.writeSync(1, 'ready\n');
for (let n = Number(startText); ; n++) {
  const key = `k${n % 5}`;
  // Several changes at once, so that they go out together in one write.
  await Promise.all([0, 1, 2].map((i) => journal.set(`${key}-${i}`, { n, filler })));
  fs.writeSync(1, `${key} ${n}\n`);
}
