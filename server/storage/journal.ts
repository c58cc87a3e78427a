import { createReadStream } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { lastVersion, SAFE_KEY, type DocStore, type DocVisitor } from './json-dir.js';
const NEWLINE = 0x0a;

/** A journal is rewritten with only its current versions once it is this big and at least half stale. */
const COMPACT_FROM_BYTES = 4 * 1024 * 1024;

/** Where a document's current version lies in the journal file: its JSON text, without the newlines. */
interface Place {
  at: number;
  length: number;
}

/** The open journal file and the places in it; a compaction replaces both at once. */
interface Generation {
  handle: FileHandle;
  places: Map<string, Place>;
  /** Reads under way; a replaced generation's file is closed when the last one ends. */
  readers: number;
  replaced: boolean;
}

interface Change {
  key: string;
  /** The document's new JSON text; undefined for a removal. */
  text: string | undefined;
  done: (error?: unknown) => void;
}

/**
 * Small JSON documents by key in one append-only file: each change is a line (`{"k":key,"v":doc}`,
 * or `{"k":key}` for a removal), and the newest line of a key is its document. Only the places of
 * current versions are kept in memory; a read is one positioned read of the file. Replaces a file
 * per document where documents are made often: creating a file costs far more than appending a
 * line (a record file and an info file per upload were about a fifth of a small upload's CPU here).
 *
 * Changes that arrive while a write is under way are written together in the next one. Every line
 * has a newline before and after it, so one cut short by a crash is read as a line of its own that
 * does not parse, and is passed over. When the file is at least half stale it is rewritten with the
 * current versions only (a temporary file renamed over it). One process owns a journal.
 */
export class Journal<T> implements DocStore<T> {
  private current!: Generation;
  /** Bytes in the file, and bytes of current versions' lines. */
  private size = 0;
  private liveBytes = 0;
  private pending: Change[] = [];
  private writing = false;
  /** Settles when the writes under way are done (close waits for it). */
  private drained: Promise<void> = Promise.resolve();
  /** The size from which a rewrite is tried; after a failed one, a further COMPACT_FROM_BYTES later. */
  private compactFrom = COMPACT_FROM_BYTES;
  /** Set when a failed write could not be undone: later changes are refused until a restart. */
  private broken: Error | undefined;

  constructor(
    private readonly file: string,
    /** A directory of one-file-per-document JSON (JsonDirectory) to take in at start-up, then remove. */
    private readonly formerDirectory?: string,
  ) {}

  async init(visit?: DocVisitor<T>): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    await fs.rm(`${this.file}.compacting`, { force: true });
    await (await fs.open(this.file, 'a')).close();
    const places = new Map<string, Place>();
    this.size = 0;
    this.liveBytes = 0;
    for await (const line of readLines(this.file)) {
      const change = parseChange(line.bytes.toString('utf8'));
      if (!change) continue;
      const before = places.get(change.k);
      if (before) this.liveBytes -= before.length + 2;
      if ('v' in change) {
        places.set(change.k, { at: line.at, length: line.length });
        this.liveBytes += line.length + 2;
      } else {
        places.delete(change.k);
      }
      visit?.(change.k, change.v as T | undefined);
    }
    this.size = (await fs.stat(this.file)).size;
    this.current = { handle: await fs.open(this.file, 'r+'), places, readers: 0, replaced: false };
    if (this.formerDirectory) await this.takeIn(this.formerDirectory, visit);
  }

  /**
   * Moves the documents of a JsonDirectory into the journal. The files go once the journal holding
   * their documents is on disk; one that does not parse is kept aside as `<name>.unreadable`.
   */
  private async takeIn(directory: string, visit?: DocVisitor<T>): Promise<void> {
    let names: string[];
    try {
      names = (await fs.readdir(directory)).filter((name) => name.endsWith('.json') && SAFE_KEY.test(name.slice(0, -5)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const unreadable: string[] = [];
    for (const name of names) {
      const document = lastVersion<T>(await fs.readFile(path.join(directory, name), 'utf8'));
      if (document === undefined) {
        unreadable.push(name);
      } else {
        await this.set(name.slice(0, -5), document);
        visit?.(name.slice(0, -5), document);
      }
    }
    await this.current.handle.sync();
    for (const name of names) {
      const file = path.join(directory, name);
      if (unreadable.includes(name)) await fs.rename(file, `${file}.unreadable`);
      else await fs.rm(file, { force: true });
    }
  }

  async get(key: string): Promise<T | undefined> {
    const generation = this.current;
    const place = generation.places.get(key);
    if (!place) return undefined;
    generation.readers++;
    try {
      const bytes = Buffer.allocUnsafe(place.length);
      const { bytesRead } = await generation.handle.read(bytes, 0, place.length, place.at);
      return (JSON.parse(bytes.toString('utf8', 0, bytesRead)) as { v: T }).v;
    } finally {
      generation.readers--;
      if (generation.replaced && generation.readers === 0) await generation.handle.close();
    }
  }

  set(key: string, value: T): Promise<void> {
    if (!SAFE_KEY.test(key)) return Promise.reject(new Error(`unsafe key ${JSON.stringify(key)}`));
    return this.change(key, JSON.stringify({ k: key, v: value }));
  }

  delete(key: string): Promise<void> {
    if (!SAFE_KEY.test(key)) return Promise.resolve();
    return this.change(key, undefined);
  }

  async keys(): Promise<string[]> {
    return [...this.current.places.keys()];
  }

  async close(): Promise<void> {
    await this.drained;
    await this.current?.handle.close();
  }

  private change(key: string, text: string | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ key, text, done: (error) => (error ? reject(error) : resolve()) });
      if (!this.writing) void this.writeChanges();
    });
  }

  /** Writes the waiting changes, as one write each time round, until none wait. */
  private async writeChanges(): Promise<void> {
    this.writing = true;
    let drain!: () => void;
    this.drained = new Promise((resolve) => (drain = resolve));
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        const lines: Buffer[] = [];
        const placed: Array<[Change, Place]> = [];
        let at = this.size;
        for (const change of batch) {
          const line = Buffer.from(`\n${change.text ?? JSON.stringify({ k: change.key })}\n`);
          lines.push(line);
          placed.push([change, { at: at + 1, length: line.length - 2 }]);
          at += line.length;
        }
        if (this.broken) {
          for (const change of batch) change.done(this.broken);
          continue;
        }
        try {
          await writeAll(this.current.handle, Buffer.concat(lines), this.size);
        } catch (error) {
          // Part of the batch may be in the file, and would count after a restart although it was
          // refused: cut it off. A journal that cannot be cut back takes no more changes.
          await this.current.handle.truncate(this.size).catch((truncateError: unknown) => {
            this.broken = new Error(`journal ${this.file} cannot be written: ${String(truncateError)}`);
          });
          for (const change of batch) change.done(error);
          continue;
        }
        this.size = at;
        for (const [change, place] of placed) {
          const before = this.current.places.get(change.key);
          if (before) this.liveBytes -= before.length + 2;
          if (change.text === undefined) {
            this.current.places.delete(change.key);
          } else {
            this.current.places.set(change.key, place);
            this.liveBytes += place.length + 2;
          }
        }
        for (const change of batch) change.done();
        if (this.size >= this.compactFrom && this.size >= 2 * this.liveBytes) {
          await this.compact().catch(() => {
            this.compactFrom = this.size + COMPACT_FROM_BYTES;
          });
        }
      }
    } finally {
      this.writing = false;
      drain();
    }
  }

  /**
   * Rewrites the journal with current versions only. Runs between writes (changes wait); reads go on
   * against the old file until the new one replaces it.
   */
  private async compact(): Promise<void> {
    const old = this.current;
    const temporary = `${this.file}.compacting`;
    // Opened for reading too: this handle becomes the journal's, the file keeping it through the rename.
    const out = await fs.open(temporary, 'w+');
    const places = new Map<string, Place>();
    const keyAt = new Map<number, string>();
    for (const [key, place] of old.places) keyAt.set(place.at, key);
    let size = 0;
    try {
      let batch: Buffer[] = [];
      let batchBytes = 0;
      for await (const line of readLines(this.file)) {
        const key = keyAt.get(line.at);
        if (key === undefined) continue;
        batch.push(Buffer.from('\n'), line.bytes, Buffer.from('\n'));
        places.set(key, { at: size + batchBytes + 1, length: line.length });
        batchBytes += line.length + 2;
        if (batchBytes >= 1024 * 1024) {
          await writeAll(out, Buffer.concat(batch), size);
          size += batchBytes;
          batch = [];
          batchBytes = 0;
        }
      }
      await writeAll(out, Buffer.concat(batch), size);
      size += batchBytes;
      if (places.size !== old.places.size) {
        throw new Error(`journal ${this.file}: ${old.places.size - places.size} current versions not found for the rewrite`);
      }
      await out.sync();
      await fs.rename(temporary, this.file);
    } catch (error) {
      await out.close();
      await fs.rm(temporary, { force: true });
      throw error;
    }
    this.current = { handle: out, places, readers: 0, replaced: false };
    this.size = size;
    this.liveBytes = size;
    old.replaced = true;
    if (old.readers === 0) await old.handle.close();
  }
}

/** A line of the journal: its bytes and where they start. */
interface Line {
  at: number;
  length: number;
  bytes: Buffer;
}

/** The non-empty lines of a file with their byte positions, read in pieces. */
async function* readLines(file: string): AsyncGenerator<Line> {
  let carry: Buffer = Buffer.alloc(0);
  let carryAt = 0;
  for await (const piece of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    const bytes = carry.length > 0 ? Buffer.concat([carry, piece as Buffer]) : (piece as Buffer);
    let start = 0;
    for (let end = bytes.indexOf(NEWLINE); end !== -1; end = bytes.indexOf(NEWLINE, start)) {
      if (end > start) {
        const line = bytes.subarray(start, end);
        yield { at: carryAt + start, length: line.length, bytes: line };
      }
      start = end + 1;
    }
    carry = bytes.subarray(start);
    carryAt += start;
  }
  // A last line without its newline was cut short by a crash; if it still parses, it was written whole.
  if (carry.length > 0) yield { at: carryAt, length: carry.length, bytes: carry };
}

function parseChange(text: string): { k: string; v?: unknown } | undefined {
  try {
    const change = JSON.parse(text) as { k?: unknown; v?: unknown };
    return typeof change === 'object' && change !== null && typeof change.k === 'string' ? (change as { k: string; v?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

async function writeAll(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, position + written);
    written += bytesWritten;
  }
}
