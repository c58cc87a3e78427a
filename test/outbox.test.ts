import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { JOURNAL_HOST, Outbox, type OutboxEntry } from '../server/hooks/outbox.js';

const entryLine = (id: string, attempts = 0): string =>
  `${JSON.stringify({ event: { id, type: 'upload.created', time: new Date().toISOString(), data: {} }, attempts, nextAttemptAt: 0 } satisfies OutboxEntry)}\n`;

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

  it('passes over a line cut short by a crash', () => {
    const first = open();
    const kept = first.add('upload.created', {});
    first.close();
    const journal = path.join(dir, fs.readdirSync(dir)[0]!);
    fs.appendFileSync(journal, '{"event":{"id":"evt_torn","ty');
    const next = open();
    expect(next.due().map((entry) => entry.event.id)).to.deep.equal([kept.id]);
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
