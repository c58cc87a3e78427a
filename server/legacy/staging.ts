import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const STAGED_NAME = /^\d+$/;

/**
 * Where chunks wait on disk before they are appended to their upload: `<root>/<session_id>/<n>`.
 * Only server-made ids and integers ever become part of a path. A chunk is first written to a
 * temporary name and renamed once it is verified, so a file with a final name is always a whole,
 * verified chunk, even after a crash.
 */
export class Staging {
  constructor(private readonly root: string) {}

  async init(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
  }

  private dir(sessionId: string): string {
    if (!SESSION_ID.test(sessionId)) throw new Error(`unsafe session id ${JSON.stringify(sessionId)}`);
    return path.join(this.root, sessionId);
  }

  chunkPath(sessionId: string, chunk: number): string {
    if (!Number.isSafeInteger(chunk) || chunk < 0) throw new Error(`unsafe chunk number ${chunk}`);
    return path.join(this.dir(sessionId), String(chunk));
  }

  /** A fresh temporary file for one attempt at a chunk (parallel attempts never share one). */
  async temporaryPath(sessionId: string, chunk: number): Promise<string> {
    await fs.mkdir(this.dir(sessionId), { recursive: true });
    return `${this.chunkPath(sessionId, chunk)}.${randomBytes(6).toString('hex')}.part`;
  }

  /** Makes a verified temporary file the staged chunk. */
  async promote(temporary: string, sessionId: string, chunk: number): Promise<void> {
    await fs.rename(temporary, this.chunkPath(sessionId, chunk));
  }

  async has(sessionId: string, chunk: number): Promise<boolean> {
    try {
      return (await fs.stat(this.chunkPath(sessionId, chunk))).isFile();
    } catch {
      return false;
    }
  }

  /** Numbers of the chunks staged for a session. */
  async staged(sessionId: string): Promise<number[]> {
    try {
      const names = await fs.readdir(this.dir(sessionId));
      return names.filter((name) => STAGED_NAME.test(name)).map(Number);
    } catch {
      return [];
    }
  }

  async removeChunk(sessionId: string, chunk: number): Promise<void> {
    await fs.rm(this.chunkPath(sessionId, chunk), { force: true });
  }

  async discard(file: string): Promise<void> {
    await fs.rm(file, { force: true });
  }

  async removeSession(sessionId: string): Promise<void> {
    await fs.rm(this.dir(sessionId), { recursive: true, force: true });
  }
}

export function isSessionId(value: string): boolean {
  return SESSION_ID.test(value);
}
