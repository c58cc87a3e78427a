import type { Express, Response } from 'express';

/**
 * JSON answers go out as `application/json` with no charset: RFC 8259 defines none (JSON is UTF-8),
 * and FastAPI, whose answers the legacy API's clients were written against, sends none.
 * Express's `res.json` appends `; charset=utf-8` to any string body, so the body is handed over as
 * bytes.
 */
export function jsonWithoutCharset(app: Express): void {
  app.response.json = function json(this: Response, body: unknown) {
    return sendJson(this, Buffer.from(JSON.stringify(body) ?? 'null'));
  };
}

/** `res.type()` would add the charset back (express looks the type up in mime-types). */
export function sendJson(res: Response, body: Buffer): Response {
  if (!res.get('Content-Type')) res.setHeader('Content-Type', 'application/json');
  return res.send(body);
}

const FLOAT_MARK = '\u0000float:';
const MARKED_FLOAT = /"\\u0000float:(-?\d+)"/g;

/**
 * JSON as Python writes it, where the fields named in `floats` are floats: a whole value keeps its
 * fraction (`50.0`, not `50`), so a client that checks for a float still finds one.
 */
export function pythonJson(body: object, floats: ReadonlySet<string>): Buffer {
  const text = JSON.stringify(body, (key, value: unknown) =>
    floats.has(key) && typeof value === 'number' && Number.isInteger(value) ? `${FLOAT_MARK}${value}` : value,
  );
  return Buffer.from(text.replace(MARKED_FLOAT, '$1.0'));
}
