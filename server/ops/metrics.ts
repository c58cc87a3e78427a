import type { NextFunction, Request, Response } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { HOOK_EVENT_TYPES } from '../hooks/delivery.js';
import { FAILURE_REASONS, type UploadEvents } from '../uploads/events.js';

/**
 * The route pattern that matched (`/files/:id`), never the raw path, so that label values stay few.
 * The pattern is taken from the route, not by putting parameter names back into the path: an error
 * handler that answers the request has parameters of its own (none), and unknown ids or chunk
 * numbers would each have made a new series.
 */
function routeLabel(req: Request): string {
  const route = req.route as { path?: unknown } | undefined;
  if (!route) return 'unmatched';
  // A route may list several patterns; the one with as many segments as the path is the one that matched.
  const depth = (path: string) => path.replace(/\/+$/, '').split('/').length;
  const patterns = (Array.isArray(route.path) ? route.path : [route.path]).filter((p): p is string => typeof p === 'string');
  const pattern = patterns.find((p) => depth(p) === depth(req.path)) ?? patterns[0];
  if (pattern === undefined) return 'unmatched';
  return `${req.baseUrl}${pattern}`.replace(/\/+$/, '') || '/';
}

/** Prometheus metrics of one tusgate app (its own registry, so several apps can share a process). */
export class Metrics {
  readonly registry = new Registry();
  readonly created = new Counter({ name: 'tusgate_uploads_created_total', help: 'Uploads created', labelNames: ['origin'], registers: [this.registry] });
  readonly completed = new Counter({ name: 'tusgate_uploads_completed_total', help: 'Uploads completed and verified', labelNames: ['origin'], registers: [this.registry] });
  readonly failed = new Counter({
    name: 'tusgate_uploads_failed_total',
    help: 'Uploads or upload requests that failed, by reason (hash, type, size, expired, aborted, checksum)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly terminated = new Counter({ name: 'tusgate_uploads_terminated_total', help: 'Uploads deleted by their owner', registers: [this.registry] });
  readonly hookEventsDropped = new Counter({
    name: 'tusgate_hook_events_dropped_total',
    help: 'Hook events dropped after retrying past HOOKS_MAX_AGE_SECONDS',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly bytesReceived = new Counter({ name: 'tusgate_bytes_received_total', help: 'Upload bytes stored', registers: [this.registry] });
  readonly duration = new Histogram({
    name: 'tusgate_http_request_duration_seconds',
    help: 'HTTP request duration by method, route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  constructor(events: UploadEvents, activeUploads: () => number | Promise<number>) {
    collectDefaultMetrics({ register: this.registry, prefix: 'tusgate_' });
    // Every series of a known label value is there from the start, at 0: rate() and increase() need a
    // sample from before a series' first increment, or they miss it (an alert on the first failure
    // after a restart would never fire).
    for (const origin of ['tus', 'legacy']) {
      this.created.inc({ origin }, 0);
      this.completed.inc({ origin }, 0);
    }
    for (const reason of FAILURE_REASONS) this.failed.inc({ reason }, 0);
    for (const type of HOOK_EVENT_TYPES) this.hookEventsDropped.inc({ type }, 0);
    new Gauge({
      name: 'tusgate_active_uploads',
      help: 'Incomplete uploads',
      registers: [this.registry],
      async collect() {
        try {
          this.set(await activeUploads());
        } catch {
          // Shared state away: the gauge keeps its last value rather than failing the whole scrape.
        }
      },
    });
    events.on('created', (record) => this.created.inc({ origin: record.origin }));
    events.on('completed', (record) => this.completed.inc({ origin: record.origin }));
    events.on('failed', (_record, reason) => this.failed.inc({ reason }));
    events.on('rejected', (_record, reason) => this.failed.inc({ reason }));
    // A finished part of a concatenation is removed at its expiry once a final upload may have copied
    // it: that ends nothing that failed.
    events.on('expired', (record) => {
      if (record.state !== 'complete') this.failed.inc({ reason: 'expired' });
    });
    events.on('terminated', () => this.terminated.inc());
    events.on('received', (bytes) => this.bytesReceived.inc(bytes));
  }

  /** Times every request; the route label is the matched route pattern, never the raw path. */
  middleware() {
    return (req: Request, res: Response, next: NextFunction) => {
      const stop = this.duration.startTimer();
      res.once('close', () => {
        stop({ method: req.method, route: routeLabel(req), status: res.writableFinished ? res.statusCode : 'aborted' });
      });
      next();
    };
  }

  async handler(_req: Request, res: Response) {
    res.set('Content-Type', this.registry.contentType).send(await this.registry.metrics());
  }
}
