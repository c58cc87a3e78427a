/** SHA-256 as metadata may declare it: 64 hex digits, or base64 (standard or URL-safe) of 32 bytes. */
export function parseSha256(value: string | null | undefined): string | undefined | 'invalid' {
  if (value === undefined || value === null || value === '') return undefined;
  const text = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return text.toLowerCase();
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const bytes = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (bytes.length === 32) return bytes.toString('hex');
  }
  return 'invalid';
}

/** RFC 9530 `Repr-Digest` value for a hex SHA-256. */
export function reprDigest(sha256Hex: string): string {
  return `sha-256=:${Buffer.from(sha256Hex, 'hex').toString('base64')}:`;
}
