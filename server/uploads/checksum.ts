import { createHash, type Hash } from 'node:crypto';

/**
 * The tus checksum extension: a request may carry `Upload-Checksum: <algorithm> <base64 digest>` of
 * its own body. The store hashes the body as it passes and keeps none of it when the digest differs.
 */
export const CHECKSUM_ALGORITHMS = ['sha1', 'md5', 'sha256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

const DIGEST_BYTES: Record<ChecksumAlgorithm, number> = { sha1: 20, md5: 16, sha256: 32 };

export interface RequestChecksum {
  algorithm: ChecksumAlgorithm;
  expected: Buffer;
}

export type ChecksumHeader = { ok: true; checksum: RequestChecksum } | { ok: false; message: string };

function isAlgorithm(name: string): name is ChecksumAlgorithm {
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(name);
}

/** Parses an `Upload-Checksum` value; a refusal says why, for a 400. */
export function parseUploadChecksum(value: string): ChecksumHeader {
  const match = /^(\S+) ([A-Za-z0-9+/]+={0,2})$/.exec(value.trim());
  if (!match) return { ok: false, message: 'Upload-Checksum must be "<algorithm> <base64 digest>"' };
  const [, algorithm, digest] = match as unknown as [string, string, string];
  // Algorithm names are lower-case by the protocol: `SHA1` is not `sha1`.
  if (!isAlgorithm(algorithm)) {
    return { ok: false, message: `checksum algorithm ${algorithm} is not supported (supported: ${CHECKSUM_ALGORITHMS.join(', ')})` };
  }
  const expected = Buffer.from(digest, 'base64');
  if (expected.length !== DIGEST_BYTES[algorithm]) {
    return { ok: false, message: `Upload-Checksum: a ${algorithm} digest is ${DIGEST_BYTES[algorithm]} bytes, base64-encoded` };
  }
  return { ok: true, checksum: { algorithm, expected } };
}

/** The request's checksum, or undefined when it sent none (or one the precheck already refused). */
export function requestChecksum(value: string | undefined): RequestChecksum | undefined {
  if (value === undefined) return undefined;
  const parsed = parseUploadChecksum(value);
  return parsed.ok ? parsed.checksum : undefined;
}

/** Digests one request's bytes as they pass, to compare with its `Upload-Checksum` at the end. */
export class ChecksumVerifier {
  private readonly hash: Hash;
  private digest: Buffer | undefined;

  constructor(private readonly checksum: RequestChecksum) {
    this.hash = createHash(checksum.algorithm);
  }

  update(chunk: Buffer): void {
    this.hash.update(chunk);
  }

  /** Whether the bytes so far match; the first call ends the digest, later ones repeat its answer. */
  matches(): boolean {
    this.digest ??= this.hash.digest();
    return this.digest.equals(this.checksum.expected);
  }
}
