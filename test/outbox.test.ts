import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { JOURNAL_HOST, Outbox, type OutboxEntry } from '../server/hooks/outbox.js';

const entryLine = (id: string, attempts = 0): string =>
  `${JSON.stringify({ event: { id, type: 'upload.created', time: new Date().toISOString(), data: {} }, attempts, nextAttemptAt: 0 } satisfies OutboxEntry)}\n`;

/** Runs the outbox's heartbeat now instead of waiting for its timer. */
const beat = (outbox: Outbox) => (outbox as unknown as { beat(): void }).beat();

describe('hook outbox: a journal per process', () => {
  let dir: string;
  const opened: Outbox[] = [];
  const open = () => {
    const outbox = new Outbox(dir);
    opened.push(outbox);
    return outbox;
  };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tusgate-outbox-'));
  });
  afterEach(() => {
    for (const outbox of opened.splice(0)) outbox.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps events in one file, and a restart takes over exactly the pending ones with their retry state', async () => {
    const first = open();
    const events = Array.from({ length: 100 }, (_, i) => first.add('upload.created', { i }));
    for (const event of events.slice(0, 97)) await first.acknowledge(event.id);
    await first.reschedule(first.due().find((entry) => entry.event.id === events[98]!.id)!, Date.now() + 60_000);
    expect(fs.readdirSync(dir)).to.have.length(1);
    first.close();
    // The next run (of this host, so the earlier pid is gone) takes the journal over.
    const next = open();
    expect(next.size()).to.equal(3);
    const retried = next.due(Number.POSITIVE_INFINITY).find((entry) => entry.event.id === events[98]!.id)!;
    expect(retried.attempts).to.equal(1);
    expect(next.due().map((entry) => entry.event.id)).to.deep.equal([events[97]!.id, events[99]!.id]);
    expect(fs.readdirSync(dir)).to.have.length(1);
  });

  it('passes over a line cut short, and keeps the line written after it', () => {
    const first = open();
    const kept = first.add('upload.created', {});
    const journal = path.join(dir, fs.readdirSync(dir)[0]!);
    // What a full disk leaves: part of a line, no newline after it.
    fs.appendFileSync(journal, '{"event":{"id":"evt_torn","ty');
    const after = first.add('upload.completed', {});
    first.close();
    const next = open();
    expect(next.due().map((entry) => entry.event.id)).to.deep.equal([kept.id, after.id]);
  });

  it('writes its pending events anew when its journal was taken while it was running', () => {
    const outbox = open();
    const event = outbox.add('upload.created', {});
    const journal = path.join(dir, fs.readdirSync(dir)[0]!);
    fs.renameSync(journal, `${journal}.taken`);
    fs.rmSync(`${journal}.taken`);
    beat(outbox);
    const later = outbox.add('upload.completed', {});
    outbox.close();
    const next = open();
    expect(next.due().map((entry) => entry.event.id)).to.deep.equal([event.id, later.id]);
  });

  it('after start-up, takes over a journal of this host only once it has been quiet for a while', () => {
    const outbox = open();
    // A pid that is not running here, or another container's pid 1 under the same host name.
    const quiet = path.join(dir, `${JOURNAL_HOST}-4194000-0a0b0c0d.jsonl`);
    fs.writeFileSync(quiet, entryLine('evt_quiet'));
    beat(outbox);
    expect(outbox.size()).to.equal(0);
    const aMinuteAgo = new Date(Date.now() - 60_000);
    fs.utimesSync(quiet, aMinuteAgo, aMinuteAgo);
    beat(outbox);
    expect(outbox.due().map((entry) => entry.event.id)).to.deep.equal(['evt_quiet']);
  });

  it('does not rewrite the journal at every acknowledgement while much is pending', async () => {
    const outbox = open();
    const data = { padding: 'x'.repeat(1000) };
    const events = Array.from({ length: 1500 }, () => outbox.add('upload.created', data));
    const journal = () => path.join(dir, fs.readdirSync(dir).find((name) => name.endsWith('.jsonl'))!);
    await outbox.acknowledge(events[0]!.id);
    const inode = fs.statSync(journal()).ino;
    for (const event of events.slice(1, 20)) await outbox.acknowledge(event.id);
    expect(fs.statSync(journal()).ino).to.equal(inode);
    expect(outbox.size()).to.equal(1480);
  });

  it('leaves the journal of a running process alone, and takes over one untouched for minutes', () => {
    const running = path.join(dir, `${JOURNAL_HOST}-${process.ppid}-0a0b0c0d.jsonl`);
    fs.writeFileSync(running, entryLine('evt_running'));
    const elsewhere = path.join(dir, 'another-host-17-0a0b0c0d.jsonl');
    fs.writeFileSync(elsewhere, entryLine('evt_elsewhere'));
    const abandoned = path.join(dir, 'another-host-18-0a0b0c0d.jsonl');
    fs.writeFileSync(abandoned, entryLine('evt_abandoned', 2));
    const longAgo = new Date(Date.now() - 10 * 60_000);
    fs.utimesSync(abandoned, longAgo, longAgo);
    const outbox = open();
    expect(outbox.due().map((entry) => entry.event.id)).to.deep.equal(['evt_abandoned']);
    expect(outbox.due()[0]!.attempts).to.equal(2);
    expect(fs.existsSync(running) && fs.existsSync(elsewhere)).to.equal(true);
    expect(fs.existsSync(abandoned)).to.equal(false);
  });

  it('takes over the event files earlier versions wrote', () => {
    fs.writeFileSync(path.join(dir, 'evt_old.json'), entryLine('evt_old').trim());
    const outbox = open();
    expect(outbox.due().map((entry) => entry.event.id)).to.deep.equal(['evt_old']);
    expect(fs.readdirSync(dir).filter((name) => name.endsWith('.json'))).to.deep.equal([]);
  });

  it('rewrites a long journal down to the pending events', async () => {
    const outbox = open();
    const keep = outbox.add('upload.completed', { keep: true });
    const data = { padding: 'x'.repeat(1000) };
    for (let i = 0; i < 3000; i++) await outbox.acknowledge(outbox.add('upload.created', data).id);
    const [journal] = fs.readdirSync(dir);
    expect(fs.statSync(path.join(dir, journal!)).size).to.be.below(1024 * 1024 + 4096);
    outbox.close();
    const next = open();
    expect(next.due().map((entry) => entry.event.id)).to.deep.equal([keep.id]);
  });
});
