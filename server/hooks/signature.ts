import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header that carries a delivery's timestamp and signature: `t=<unix seconds>,v1=<hex>`. */
export const SIGNATURE_HEADER = 'Tusgate-Signature';
/** The header that names the event a delivery carries (its `id`), for receivers that deduplicate. */
export const EVENT_ID_HEADER = 'Tusgate-Event-Id';

/** HMAC-SHA256 over `<timestamp>.<body>`, so a captured body cannot be replayed with a new time. */
export function sign(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export function signatureHeader(secret: string, body: string, now = Date.now()): string {
  const timestamp = Math.floor(now / 1000);
  return `t=${timestamp},v1=${sign(secret, timestamp, body)}`;
}

/** What a receiver does: recompute, compare in constant time, and refuse stale timestamps. */
export function verifySignature(secret: string, header: string | undefined, body: string, toleranceSeconds = 300, now = Date.now()): boolean {
  const fields = new Map((header ?? '').split(',').map((part) => part.split('=', 2) as [string, string]));
  const timestamp = Number(fields.get('t'));
  const given = fields.get('v1') ?? '';
  if (!Number.isInteger(timestamp) || Math.abs(now / 1000 - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(sign(secret, timestamp, body), 'hex');
  const actual = Buffer.from(given, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
