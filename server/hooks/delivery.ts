import type { Logger } from 'pino';
import type { FailureReason, UploadEvents } from '../uploads/events.js';
import { isPartial, type UploadRecord } from '../uploads/records.js';
import { Outbox, type OutboxEntry } from './outbox.js';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, signatureHeader } from './signature.js';

export const HOOK_EVENT_TYPES = ['upload.created', 'upload.completed', 'upload.failed', 'upload.terminated', 'upload.expired'] as const;

export interface DeliveryOptions {
  url: string;
  secret: string;
  events: readonly string[];
  timeoutMs: number;
  maxAgeMs: number;
  retryBaseMs: number;
  outboxDir: string;
  logger: Logger;
  onDropped?: (type: string) => void;
}

/** What a receiver learns of an upload: the server-owned facts, never a token. */
function uploadData(record: UploadRecord): Record<string, unknown> {
  return {
    id: record.id,
    owner: record.owner,
    origin: record.origin,
    filename: record.filename ?? null,
    declared_type: record.declaredType ?? null,
    size: record.size ?? null,
    created_at: record.createdAt,
  };
}

const MAX_DELAY_MS = 3600_000;

/**
 * Signed event deliveries, at least once. Upload events go to the outbox as they happen, inside the
 * request that caused them; a background loop posts them and removes each on a 2xx, retrying others
 * with exponential backoff and jitter until they are older than `maxAgeMs`. Nothing here runs on the
 * upload path or under an upload's lock beyond the outbox write itself.
 */
export class HookDelivery {
  private readonly outbox: Outbox;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  private retryAllOnce = false;
  private closed = false;

  constructor(private readonly options: DeliveryOptions, events: UploadEvents) {
    this.outbox = new Outbox(options.outboxDir);
    const wanted = new Set(options.events.length > 0 ? options.events : HOOK_EVENT_TYPES);
    const add = (type: string, data: Record<string, unknown>) => {
      if (!wanted.has(type)) return;
      try {
        this.outbox.add(type, data);
      } catch (error) {
        // The event waits in memory; an upload does not fail because its event could not be saved.
        this.options.logger.error({ err: error, type }, 'hook event not saved to the outbox');
      }
      this.kick();
    };
    // Events are of files. A partial upload of a concatenation is not one (it is never served, and
    // expires once its final upload has copied it); its final upload has events of its own.
    const ofFile = <Args extends unknown[]>(listener: (record: UploadRecord, ...rest: Args) => void) =>
      (record: UploadRecord, ...rest: Args) => {
        if (!isPartial(record)) listener(record, ...rest);
      };
    events.on('created', ofFile((record) => add('upload.created', uploadData(record))));
    events.on('completed', ofFile((record) =>
      add('upload.completed', {
        ...uploadData(record),
        verified_type: record.verifiedType ?? null,
        sha256: record.sha256 ?? null,
        media: record.media ?? null,
        metadata: record.metadata ?? {},
        completed_at: record.completedAt ?? null,
        url: `/files/${record.id}`,
      }),
    ));
    events.on('failed', ofFile((record, reason: FailureReason) => add('upload.failed', { ...uploadData(record), reason })));
    events.on('terminated', ofFile((record) => add('upload.terminated', uploadData(record))));
    events.on('expired', ofFile((record) => add('upload.expired', uploadData(record))));
  }

  /** Starts delivering; events left by an earlier run are all tried at once, whatever their backoff. */
  start(): void {
    if (this.closed) throw new Error('hook delivery was stopped for good');
    this.stopped = false;
    this.retryAllOnce = true;
    this.kick();
  }

  /** Stops delivering for good; what is pending stays in the outbox for the next start. */
  stop(): void {
    this.stopped = true;
    this.closed = true;
    clearTimeout(this.timer);
    this.outbox.close();
  }

  pending(): number {
    return this.outbox.size();
  }

  private kick(delayMs = 0): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), delayMs);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      let due = this.outbox.due(this.retryAllOnce ? Number.POSITIVE_INFINITY : Date.now());
      this.retryAllOnce = false;
      while (due.length > 0 && !this.stopped) {
        await Promise.all(due.map((entry) => this.deliver(entry)));
        due = this.outbox.due();
      }
    } catch (error) {
      this.options.logger.error({ err: error }, 'hook delivery loop failed');
    } finally {
      this.running = false;
    }
    if (!this.stopped) this.kick(this.outbox.size() > 0 ? Math.min(1000, this.options.retryBaseMs) : 30_000);
  }

  private async deliver(entry: OutboxEntry): Promise<void> {
    const { event } = entry;
    const body = JSON.stringify(event);
    let status = 0;
    try {
      const response = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', [SIGNATURE_HEADER]: signatureHeader(this.options.secret, body), [EVENT_ID_HEADER]: event.id },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      status = response.status;
      await response.body?.cancel();
    } catch {
      status = 0;
    }
    if (status >= 200 && status < 300) {
      await this.outbox.acknowledge(event.id);
      return;
    }
    const age = Date.now() - Date.parse(event.time);
    if (age > this.options.maxAgeMs) {
      await this.outbox.acknowledge(event.id);
      this.options.logger.warn({ eventId: event.id, type: event.type, attempts: entry.attempts + 1 }, 'hook event dropped: too old');
      this.options.onDropped?.(event.type);
      return;
    }
    const backoff = Math.min(MAX_DELAY_MS, this.options.retryBaseMs * 2 ** entry.attempts);
    await this.outbox.reschedule(entry, Date.now() + backoff * (0.5 + Math.random()));
  }
}
