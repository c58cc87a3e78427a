import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { batchedReadStream, batchedWriteStream } from './batched-io.js';
import { observed } from './observed.js';

/** One request body kept on local disk until it may go to storage that cannot take bytes back. */
export class Spool {
  readonly path: string;

  constructor(directory: string) {
    this.path = path.join(directory, `spool-${randomUUID()}`);
  }

  /** Writes the whole of `source`; `observe` sees each chunk on its way. */
  async fill(source: Readable, observe: (chunk: Buffer) => void): Promise<void> {
    await pipeline(observed(source, observe), batchedWriteStream(this.path, { flags: 'w' }));
  }

  read(): Readable {
    return batchedReadStream(this.path);
  }

  async remove(): Promise<void> {
    await fs.promises.rm(this.path, { force: true });
  }
}

