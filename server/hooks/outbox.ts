import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface HookEvent {
  id: string;
  type: string;
  time: string;
  data: Record<string, unknown>;
}

export interface OutboxEntry {
  event: HookEvent;
  attempts: number;
  nextAttemptAt: number;
}

/**
 * Events waiting for delivery, one JSON file each in the data directory, mirrored in memory so that
 * finding what is due never reads the disk. An event is written before the request that caused it
 * is answered (the write is synchronous, and small), so a crash at any later point still delivers
 * it; it is removed only once the receiver has acknowledged it.
 */
export class Outbox {
  private readonly pending = new Map<string, OutboxEntry>();

  constructor(private readonly directory: string) {
    fs.mkdirSync(directory, { recursive: true });
    for (const name of fs.readdirSync(directory).sort()) {
      const file = path.join(directory, name);
      // A crash between writing a temporary file and renaming it leaves the temporary file: drop it.
      if (name.endsWith('.tmp')) fs.rmSync(file, { force: true });
      if (!name.endsWith('.json')) continue;
      try {
        const entry = JSON.parse(fs.readFileSync(file, 'utf8')) as OutboxEntry;
        this.pending.set(entry.event.id, entry);
      } catch {
        fs.rmSync(file, { force: true });
      }
    }
  }

  private file(id: string): string {
    return path.join(this.directory, `${id}.json`);
  }

  add(type: string, data: Record<string, unknown>, now = Date.now()): HookEvent {
    // Ids sort by time, so delivery follows the order in which things happened.
    const id = `evt_${now.toString(36).padStart(9, '0')}_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const event: HookEvent = { id, type, time: new Date(now).toISOString(), data };
    const entry = { event, attempts: 0, nextAttemptAt: now };
    const temporary = `${this.file(id)}.${randomUUID()}.tmp`;
    fs.writeFileSync(temporary, JSON.stringify(entry));
    fs.renameSync(temporary, this.file(id));
    this.pending.set(id, entry);
    return event;
  }

  /** Entries due now, oldest first. */
  due(now = Date.now(), limit = 32): OutboxEntry[] {
    const due: OutboxEntry[] = [];
    for (const entry of this.pending.values()) {
      if (entry.nextAttemptAt <= now) due.push(entry);
      if (due.length >= limit) break;
    }
    return due;
  }

  async acknowledge(id: string): Promise<void> {
    this.pending.delete(id);
    await fs.promises.rm(this.file(id), { force: true });
  }

  async reschedule(entry: OutboxEntry, nextAttemptAt: number): Promise<void> {
    const next = { ...entry, attempts: entry.attempts + 1, nextAttemptAt };
    this.pending.set(entry.event.id, next);
    const temporary = `${this.file(entry.event.id)}.${randomUUID()}.tmp`;
    await fs.promises.writeFile(temporary, JSON.stringify(next));
    await fs.promises.rename(temporary, this.file(entry.event.id));
  }

  size(): number {
    return this.pending.size;
  }
}
