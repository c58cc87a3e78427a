import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processRunning } from '../storage/owner.js';

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

/** One line of a journal: an event added (or again, with its new retry time), or an acknowledgement. */
type JournalLine = OutboxEntry | { ack: string };

/** Past this size a journal is rewritten with only the events still pending. */
const COMPACT_BYTES = 1024 * 1024;
/** A running process touches its journal this often, and looks for journals of processes that are gone. */
const HEARTBEAT_MS = 10_000;
/** A journal of another host untouched for this long belongs to a process that is gone (clocks may differ a little). */
const STALE_MS = 5 * 60_000;
/** After start-up, a journal of this host is taken over only once untouched for this long, whatever its pid says. */
const QUIET_MS = 3 * HEARTBEAT_MS;

export const JOURNAL_HOST = os.hostname().replace(/[^A-Za-z0-9_.-]/g, '_');

/** A fresh journal name of this process: host, pid, and a random tag. */
function journalName(directory: string): string {
  return path.join(directory, `${JOURNAL_HOST}-${process.pid}-${randomBytes(4).toString('hex')}.jsonl`);
}

/**
 * Whether the journal `name` was written by a process of this host that is no longer running. One
 * with this process's own pid is an earlier run's (a container's server is often pid 1). Processes in
 * other pid namespaces under the same host name look gone too; see `adoptAbandoned`.
 */
function writerGone(name: string): boolean {
  const match = /^(.+)-(\d+)-[0-9a-f]+\.jsonl$/.exec(name);
  if (!match || match[1] !== JOURNAL_HOST) return false;
  return Number(match[2]) === process.pid || !processRunning(Number(match[2]));
}

/**
 * Events waiting for delivery, kept in a journal in the data directory and mirrored in memory, so
 * that finding what is due never reads the disk. An event is appended to the journal before the
 * request that caused it is answered (a synchronous append of one line, ~20 µs: no file is
 * created, which costs ~0.5 ms on ext4 here with the event loop blocked), so a crash at any later
 * point still delivers it; an acknowledgement or a new retry time is another line.
 *
 * Each process writes a journal of its own (several may share the directory). The journal of a
 * process that is gone is claimed by renaming it, so one process takes it over and delivers its
 * pending events (at least once more). Gone means: of another host and untouched for STALE_MS; of
 * this host, with a pid not running (or this process's own), at start-up, so that a restart delivers
 * at once; later, also untouched for QUIET_MS, so that a process elsewhere that only looks gone
 * (another container with the same host name) is not robbed over and over. A process whose journal
 * was taken while it was running notices at its next heartbeat and writes its pending events anew.
 */
export class Outbox {
  private readonly pending = new Map<string, OutboxEntry>();
  private readonly journal: string;
  private fd: number;
  private written = 0;
  /** The journal is rewritten when it reaches this size: never less than twice what is pending. */
  private compactAt = COMPACT_BYTES;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly directory: string) {
    fs.mkdirSync(directory, { recursive: true });
    this.journal = journalName(directory);
    this.fd = fs.openSync(this.journal, 'a');
    this.adoptAbandoned(true);
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private beat(): void {
    try {
      if (this.fd >= 0 && fs.fstatSync(this.fd).nlink === 0) {
        // Taken over while running: the events still pending here go into the journal again.
        fs.closeSync(this.fd);
        this.fd = -1;
        this.rewrite();
      } else {
        const now = new Date();
        fs.utimesSync(this.journal, now, now);
      }
      this.adoptAbandoned(false);
    } catch {
      // The directory is away for now (a full disk, a lost mount): the next beat tries again.
    }
  }

  /** Takes over the events of journals whose processes are gone (and of event files of earlier versions). */
  private adoptAbandoned(starting: boolean): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.directory).sort();
    } catch {
      return;
    }
    const now = Date.now();
    for (const name of names) {
      const file = path.join(this.directory, name);
      if (file === this.journal) continue;
      try {
        const untouchedFor = () => now - fs.statSync(file).mtimeMs;
        if (name.endsWith('.tmp')) {
          // A rewrite cut short by a crash.
          if (untouchedFor() > STALE_MS) fs.rmSync(file, { force: true });
          continue;
        }
        const gone =
          name.endsWith('.json') ||
          (name.endsWith('.jsonl') && (writerGone(name) ? starting || untouchedFor() > QUIET_MS : untouchedFor() > STALE_MS));
        if (gone) this.adopt(file);
      } catch {
        // Gone meanwhile, or unreadable: the next beat looks again.
      }
    }
  }

  /**
   * Claims a journal by renaming it to a name of this process (of several processes adopting at
   * once, one gets it; if this one dies before it is done, the file is adoptable again), then moves
   * its pending events into this process's journal before removing it.
   */
  private adopt(file: string): void {
    const claimed = journalName(this.directory);
    try {
      fs.renameSync(file, claimed);
    } catch {
      return;
    }
    const now = new Date();
    fs.utimesSync(claimed, now, now);
    for (const entry of this.read(claimed)) {
      if (this.pending.has(entry.event.id)) continue;
      this.pending.set(entry.event.id, entry);
      this.append(entry);
    }
    fs.rmSync(claimed, { force: true });
  }

  /** The events a journal (or an event file) leaves pending. */
  private read(file: string): OutboxEntry[] {
    const pending = new Map<string, OutboxEntry>();
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      return [];
    }
    for (const line of text.split('\n')) {
      let parsed: JournalLine;
      try {
        parsed = JSON.parse(line) as JournalLine;
      } catch {
        // An empty line, or the last one of a process that died while appending it.
        continue;
      }
      if ('ack' in parsed) pending.delete(parsed.ack);
      else if (parsed?.event?.id) pending.set(parsed.event.id, parsed);
    }
    return [...pending.values()];
  }

  /**
   * Appends one line. It starts with a newline too, so that a line cut short (a full disk) never runs
   * into the next one; the reader skips what does not parse.
   */
  private append(line: JournalLine): void {
    const bytes = Buffer.from(`\n${JSON.stringify(line)}\n`);
    // An event of a request still finishing after close() is kept all the same.
    if (this.fd < 0) this.fd = fs.openSync(this.journal, 'a');
    for (let offset = 0; offset < bytes.length; ) offset += fs.writeSync(this.fd, bytes, offset);
    this.written += bytes.length;
  }

  add(type: string, data: Record<string, unknown>, now = Date.now()): HookEvent {
    // Ids sort by time, so delivery follows the order in which things happened.
    const id = `evt_${now.toString(36).padStart(9, '0')}_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
    const event: HookEvent = { id, type, time: new Date(now).toISOString(), data };
    const entry = { event, attempts: 0, nextAttemptAt: now };
    // Pending in memory first: if the journal cannot take it (a full disk), it is still delivered
    // unless the process dies first; the caller hears of the failure.
    this.pending.set(id, entry);
    this.append(entry);
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
    if (!this.pending.delete(id)) return;
    this.append({ ack: id });
    this.compactIfLarge();
  }

  async reschedule(entry: OutboxEntry, nextAttemptAt: number): Promise<void> {
    const next = { ...entry, attempts: entry.attempts + 1, nextAttemptAt };
    this.pending.set(entry.event.id, next);
    this.append(next);
    this.compactIfLarge();
  }

  private compactIfLarge(): void {
    if (this.written >= this.compactAt) this.rewrite();
  }

  /** Replaces the journal by one holding only the pending events. */
  private rewrite(): void {
    const temporary = `${this.journal}.${randomBytes(4).toString('hex')}.tmp`;
    const lines = [...this.pending.values()].map((entry) => `${JSON.stringify(entry)}\n`).join('');
    fs.writeFileSync(temporary, lines);
    fs.renameSync(temporary, this.journal);
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = fs.openSync(this.journal, 'a');
    this.written = Buffer.byteLength(lines);
    this.compactAt = Math.max(COMPACT_BYTES, 2 * this.written);
  }

  size(): number {
    return this.pending.size;
  }

  /** Stops writing; pending events stay in the journal, for this process's successor to take over. */
  close(): void {
    clearInterval(this.heartbeat);
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
