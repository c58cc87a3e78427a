import type { Response } from 'express';

/**
 * A service the request needs is unreachable (shared state, by default; or the JWT key set): the
 * request is refused before anything is stored, with a status every client retries (tus-js-client
 * retries any 5xx). Carries both the `status_code`/`body` @tus/server answers with and the `status`
 * express error handlers read.
 */
export class Unavailable extends Error {
  readonly status = 503;
  readonly status_code = 503;
  readonly body: string;

  constructor(cause?: unknown, what = 'shared state (Redis)') {
    super(`${what} is unreachable`, { cause });
    this.body = `Service Unavailable: ${what} is unreachable; retry shortly\n`;
  }
}

/**
 * What a HEAD gets while shared state is away. tus-js-client resumes with a HEAD and retries it
 * only on 423 (on a 5xx it drops the upload and starts a new one from byte 0), so "locked for the
 * moment" is the answer that keeps a resume a resume.
 */
export const RESUME_LATER = {
  status_code: 423,
  body: "Locked: the upload's state is unreachable for the moment (shared state); retry shortly\n",
} as const;

/** An error that says "not now" rather than "broken": shared state unreachable (503), upload locked (423). */
export function isTemporary(error: unknown): boolean {
  const status = (error as { status_code?: number } | null)?.status_code;
  return status === 503 || status === 423;
}

/** The answer to a temporary error on the express routes: nothing was changed; try again shortly. */
export function answerRetryLater(res: Response): void {
  res.status(503).set('Retry-After', '1').json({ detail: 'Service temporarily unavailable, please retry' });
}

/** Runs one operation on shared state; any failure of it becomes `Unavailable`. */
export async function shared<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw error instanceof Unavailable ? error : new Unavailable(error);
  }
}

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

/**
 * Runs `task` again in the background while it fails for want of shared state (a temporary error),
 * further apart each time (half a second, doubling up to 30 s): at most `attempts` runs in all, and
 * none once `signal` has aborted. For work that must still be done once shared state is back.
 */
export function retryWhileAway(task: () => Promise<unknown>, { attempts = Infinity, signal }: { attempts?: number; signal?: AbortSignal } = {}): void {
  const run = (attempt: number, delayMs: number) => {
    setTimeout(() => {
      if (signal?.aborted) return;
      task().catch((error: unknown) => {
        if (isTemporary(error) && attempt < attempts) run(attempt + 1, Math.min(2 * delayMs, RETRY_MAX_MS));
      });
    }, delayMs).unref();
  };
  run(2, RETRY_FIRST_MS);
}
