import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { KeyedSerializer } from './serial.js';

/** Document keys are server-made ids; nothing else may name a file. */
export const SAFE_KEY = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Sees documents as a store opens: a key with its document, or with undefined for a removal, in the
 * order they were written, so the last call for a key gives its current state.
 */
export type DocVisitor<T> = (key: string, document: T | undefined) => void;

/** Small JSON documents by key: a directory here (one process), Redis when several share state. */
export interface DocStore<T> {
  /** Opens the store; `visit`, when given, sees every document it holds (see DocVisitor). */
  init(visit?: DocVisitor<T>): Promise<void>;
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
 * After this many appends to one document file, or this many bytes of them, the next write replaces
 * the file with one version. The bytes bound keeps reads of large documents cheap (a legacy session's
 * chunk list grows with every chunk, and a read takes in the whole file).
 */
const COMPACT_AFTER = 64;
const COMPACT_AFTER_BYTES = 256 * 1024;
/** How many documents' append counts are remembered (a forgotten count starts again from zero). */
const COUNTED_KEYS = 10_000;

/**
 * The newest complete version in a document file: the last newline-separated segment that parses.
 * A version cut short by a crash never parses (JSON text ends with the object's closing brace), so
 * it is passed over for the one before it.
 */
export function lastVersion<T>(text: string): T | undefined {
  let end = text.length;
  while (end > 0) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    const segment = text.slice(start, end);
    if (segment.trim() !== '') {
      try {
        return JSON.parse(segment) as T;
      } catch {
        // a torn version: take the one before it
      }
    }
    end = start - 1;
  }
  return undefined;
}

/**
 * A directory of small JSON documents, one file per key. A write appends the new version to the
 * document's file (each version on a line of its own, a newline before it as well as after, so one
 * cut short by a crash never runs into the next) and a read takes the last complete one, so a crash
 * leaves the old or the new document, never half of one. Appending, rather than writing a
 * temporary file and renaming it over the old one, creates no file after the first version: on
 * ext4 creating and freeing inodes costs each write ~0.5 ms, an append ~20 µs. Every COMPACT_AFTER
 * appends (or COMPACT_AFTER_BYTES) the file is replaced (temporary file and rename) by one holding
 * only the newest version.
 * Keys are server-made ids; anything else is refused, so no client text becomes a path.
 */
export class JsonDirectory<T> implements DocStore<T> {
  /** Appends (count, bytes) since each document's file last held a single version, as far as this process knows. */
  private readonly appends = new Map<string, { count: number; bytes: number }>();
  /**
   * Changes of one document go one at a time: an append racing a rewrite could land in the file the
   * rename is replacing and be lost, and a write queued before a delete must not bring it back after.
   */
  private readonly changes = new KeyedSerializer();

  constructor(private readonly directory: string) {}

  async init(visit?: DocVisitor<T>): Promise<void> {
    await fs.mkdir(this.directory, { recursive: true });
    if (visit) await visitCurrent(this, visit);
  }

  private file(key: string): string {
    if (!SAFE_KEY.test(key)) throw new Error(`unsafe key ${JSON.stringify(key)}`);
    return path.join(this.directory, `${key}.json`);
  }

  async get(key: string): Promise<T | undefined> {
    if (!SAFE_KEY.test(key)) return undefined;
    try {
      return lastVersion<T>(await fs.readFile(this.file(key), 'utf8'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async set(key: string, value: T): Promise<void> {
    const target = this.file(key);
    const text = JSON.stringify(value);
    await this.changes.run(key, () => this.write(key, target, text));
  }

  private async write(key: string, target: string, text: string): Promise<void> {
    const appended = this.appends.get(key) ?? { count: 0, bytes: 0 };
    this.appends.delete(key);
    if (appended.count >= COMPACT_AFTER || appended.bytes + text.length > COMPACT_AFTER_BYTES) {
      const temporary = `${target}.${PROCESS_TAG}-${(writes++).toString(36)}.tmp`;
      await fs.writeFile(temporary, text);
      await fs.rename(temporary, target);
      return;
    }
    await fs.appendFile(target, `\n${text}\n`);
    if (this.appends.size >= COUNTED_KEYS) this.appends.delete(this.appends.keys().next().value!);
    this.appends.set(key, { count: appended.count + 1, bytes: appended.bytes + text.length + 2 });
  }

  async delete(key: string): Promise<void> {
    const target = this.file(key);
    await this.changes.run(key, async () => {
      this.appends.delete(key);
      await fs.rm(target, { force: true });
    });
  }

  async keys(): Promise<string[]> {
    const names = await fs.readdir(this.directory);
    return names.filter((name) => name.endsWith('.json')).map((name) => name.slice(0, -'.json'.length));
  }
}

/** For stores that keep only current versions: each document, by key and read. */
export async function visitCurrent<T>(store: Pick<DocStore<T>, 'keys' | 'get'>, visit: DocVisitor<T>): Promise<void> {
  for (const key of await store.keys()) {
    const document = await store.get(key);
    if (document !== undefined) visit(key, document);
  }
}
