// Child process for test/journal.test.ts: at the given time (ms since the epoch, so that two children
// claim at the same moment) claims a data directory, says whether it got it, and stays alive (holding
// it) until killed.
import { claimDirectory } from '../../server/storage/owner.js';

const [directory, at] = process.argv.slice(2);
await new Promise((resolve) => setTimeout(resolve, Number(at) - Date.now()));
await claimDirectory(directory!).then(
  () => process.stdout.write('claimed\n'),
  (error: Error) => process.stdout.write(`refused ${error.message}\n`),
);
setInterval(() => undefined, 1_000);
