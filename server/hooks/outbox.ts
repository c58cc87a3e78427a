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
 * Events waiting for delivery, one JSON file each in the data directory. An event is written
 * before the request that caused it is answered (the write is synchronous, and small), so a crash
 * at any later point still delivers it; it is removed only once the receiver has acknowledged it.
 */
export class Outbox {
  constructor(private readonly directory: string) {
    fs.mkdirSync(directory, { recursive: true });
    // A crash between writing a temporary file and renaming it leaves the temporary file: drop it.
    for (const name of fs.readdirSync(directory)) if (name.endsWith('.tmp')) fs.rmSync(path.join(directory, name), { force: true });
  }

  private file(id: string): string {
    return path.join(this.directory, `${id}.json`);
  }

  private write(entry: OutboxEntry): void {
    const target = this.file(entry.event.id);
    const temporary = `${target}.${randomUUID()}.tmp`;
    fs.writeFileSync(temporary, JSON.stringify(entry));
    fs.renameSync(temporary, target);
  }

  add(type: string, data: Record<string, unknown>, now = Date.now()): HookEvent {
    // Ids sort by time, so delivery follows the order in which things happened.
    const id = `evt_${now.toString(36).padStart(9, '0')}_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const event: HookEvent = { id, type, time: new Date(now).toISOString(), data };
    this.write({ event, attempts: 0, nextAttemptAt: now });
    return event;
  }

  /** Entries due now, oldest first. */
  due(now = Date.now(), limit = 32): OutboxEntry[] {
    const names = fs.readdirSync(this.directory).filter((name) => name.endsWith('.json')).sort();
    const due: OutboxEntry[] = [];
    for (const name of names) {
      try {
        const entry = JSON.parse(fs.readFileSync(path.join(this.directory, name), 'utf8')) as OutboxEntry;
        if (entry.nextAttemptAt <= now) due.push(entry);
      } catch {
        // Removed by a concurrent acknowledgement: nothing to do.
      }
      if (due.length >= limit) break;
    }
    return due;
  }

  acknowledge(id: string): void {
    fs.rmSync(this.file(id), { force: true });
  }

  reschedule(entry: OutboxEntry, nextAttemptAt: number): void {
    this.write({ ...entry, attempts: entry.attempts + 1, nextAttemptAt });
  }

  size(): number {
    return fs.readdirSync(this.directory).filter((name) => name.endsWith('.json')).length;
  }
}
