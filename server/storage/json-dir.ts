import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

const SAFE_KEY = /^[A-Za-z0-9_-]{1,128}$/;

/** Small JSON documents by key: a directory here (one process), Redis when several share state. */
export interface DocStore<T> {
  init(): Promise<void>;
  get(key: string): Promise<T | undefined>;
  set(key: string, value: T): Promise<void>;
  delete(key: string): Promise<void>;
  keys(): Promise<string[]>;
}

/**
 * Temporary files are named by a random tag made once per process and a count of this process's
 * writes: as unique as a random name per write, without asking the system for randomness each time.
 */
const PROCESS_TAG = randomBytes(6).toString('hex');
let writes = 0;

/**
 * A directory of small JSON documents, one file per key. Writes go to a temporary file that is
 * renamed over the old one, so a crash leaves either the old or the new document, never half of one.
 * Keys are server-made ids; anything else is refused, so no client text becomes a path.
 */
export class JsonDirectory<T> implements DocStore<T> {
  constructor(private readonly directory: string) {}

  async init(): Promise<void> {
    await fs.mkdir(this.directory, { recursive: true });
  }

  private file(key: string): string {
    if (!SAFE_KEY.test(key)) throw new Error(`unsafe key ${JSON.stringify(key)}`);
    return path.join(this.directory, `${key}.json`);
  }

  async get(key: string): Promise<T | undefined> {
    if (!SAFE_KEY.test(key)) return undefined;
    try {
      return JSON.parse(await fs.readFile(this.file(key), 'utf8')) as T;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async set(key: string, value: T): Promise<void> {
    const target = this.file(key);
    const temporary = `${target}.${PROCESS_TAG}-${(writes++).toString(36)}.tmp`;
    await fs.writeFile(temporary, JSON.stringify(value));
    await fs.rename(temporary, target);
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.file(key), { force: true });
  }

  async keys(): Promise<string[]> {
    const names = await fs.readdir(this.directory);
    return names.filter((name) => name.endsWith('.json')).map((name) => name.slice(0, -'.json'.length));
  }
}
