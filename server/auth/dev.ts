import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { SignJWT } from 'jose';

export const DEMO_USER = 'demo-user';

/**
 * The secret of development mode: made on the first start and kept in the data directory (readable
 * by its owner only), so that a restart leaves the demo page's token valid and its interrupted
 * uploads resumable. It is never part of the repository (DATA_DIR is ignored by git).
 */
export async function devSecret(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'dev-secret');
  for (;;) {
    try {
      const secret = (await fs.readFile(file, 'utf8')).trim();
      if (secret.length >= 32) return secret;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    await fs.mkdir(dataDir, { recursive: true });
    try {
      await fs.writeFile(file, randomBytes(32).toString('base64url'), { mode: 0o600, flag: 'wx' });
    } catch (error) {
      // Another process made it first (read it), or a short file is replaced.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if ((await fs.readFile(file, 'utf8')).trim().length < 32) await fs.rm(file, { force: true });
    }
  }
}

export async function signDevToken(secret: string, user = DEMO_USER, ttlSeconds = 24 * 3600): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(Buffer.from(secret, 'utf8'));
}
