import { z } from 'zod';
import defaults from '../tus.config.js';

// Whole numbers in plain decimal only: Number() would also take "0x10", "1e3" or " ", and a byte
// count or port written that way is far more likely a mistake than a wish.
const int = (min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({ error: 'must be a whole number' })
      .int('must be a whole number')
      .min(min, `must be at least ${min}`)
      .max(max, `must be at most ${max}`),
  );
/** Seconds, in plain decimal with an optional fraction. */
const seconds = (message: string, min: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v),
    z.number({ error: message }).min(min, message),
  );
/** Node's timers wait at most 2^31 - 1 ms; a longer wait would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A hundred years: expiry dates stay dates. */
const MAX_LIFETIME_SECONDS = 100 * 365 * 86_400;
/** A Redis URL that ioredis takes as it is: a redis:// or rediss:// scheme, a port, a numeric database. */
const isRedisUrl = (value: string) => {
  try {
    const url = new URL(value);
    return /^rediss?:$/.test(url.protocol) && url.hostname !== '' && /^\/?\d*$/.test(url.pathname);
  } catch {
    return false;
  }
};
const list = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v),
  z.array(z.string()),
);
const bool = z.preprocess((v) => {
  if (typeof v !== 'string') return v;
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  return v;
}, z.boolean({ error: 'must be true or false' }));
/** An http(s) URL: a key set, a hook or an S3 endpoint is fetched over HTTP, nothing else. */
const httpUrl = () => z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });
/** A browser origin as the Origin header carries it (scheme://host[:port]), or `*`. */
const isOrigin = (value: string) => {
  if (value === '*') return true;
  try {
    const url = new URL(value);
    return /^https?:$/.test(url.protocol) && url.origin === value;
  } catch {
    return false;
  }
};
const mimePattern = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$/i;

const schema = z.object({
  PORT: int(0, 65535),
  HOST: z.string().min(1),
  DATA_DIR: z.string().min(1),
  JWT_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  JWT_PUBLIC_KEY: z.string().includes('-----BEGIN', { message: 'must be a PEM public key' }).optional(),
  JWT_JWKS_URL: httpUrl().optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: z.string().min(1).optional(),
  JWT_USER_CLAIM: z.string().min(1),
  ADMIN_USERS: list,
  MAX_FILE_SIZE: int(1),
  MAX_CHUNK_SIZE: int(1),
  ALLOWED_MIME_TYPES: list.pipe(z.array(z.string().regex(mimePattern, 'must be type/subtype or type/*')).min(1)),
  UPLOAD_EXPIRY_SECONDS: int(1, MAX_LIFETIME_SECONDS),
  SWEEP_INTERVAL_SECONDS: int(1, Math.floor(MAX_TIMER_MS / 1000)),
  MAX_ACTIVE_UPLOADS_PER_USER: int(1),
  UPLOADS_PER_HOUR_PER_USER: int(1),
  FILES_PUBLIC: bool,
  CORS_ORIGINS: list.pipe(z.array(z.string().refine(isOrigin, 'must be origins such as https://app.example (scheme://host[:port], no path), or *'))),
  STORAGE: z.enum(['file', 's3']),
  S3_BUCKET: z.string().min(3, 'must be a bucket name').optional(),
  S3_ENDPOINT: httpUrl().optional(),
  S3_REGION: z.string().min(1),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_FORCE_PATH_STYLE: bool,
  REDIS_URL: z.string().refine(isRedisUrl, 'must be a redis:// or rediss:// URL: redis://[user:password@]host[:port][/db]').optional(),
  MAX_IMAGE_PIXELS: int(1),
  MAX_MEDIA_DURATION_SECONDS: seconds('must be a positive number of seconds', Number.MIN_VALUE).optional(),
  MIN_MEDIA_DURATION_SECONDS: seconds('must be a number of seconds', 0).optional(),
  HOOKS_URL: httpUrl().optional(),
  HOOKS_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  HOOKS_EVENTS: list.pipe(z.array(z.enum(['upload.created', 'upload.completed', 'upload.failed', 'upload.terminated', 'upload.expired']))),
  HOOKS_PRE_CREATE_URL: httpUrl().optional(),
  HOOKS_TIMEOUT_MS: int(1, MAX_TIMER_MS),
  HOOKS_PRE_CREATE_FAIL_OPEN: bool,
  HOOKS_MAX_AGE_SECONDS: int(1, MAX_LIFETIME_SECONDS),
  HOOKS_RETRY_BASE_MS: int(1, MAX_TIMER_MS),
  SHUTDOWN_GRACE_MS: int(0, MAX_TIMER_MS),
  REQUEST_IDLE_TIMEOUT_MS: int(1000, MAX_TIMER_MS),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  NODE_ENV: z.string().optional(),
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {}

/** Variables whose values are credentials: a start-up error (printed, logged) must not reveal them. */
const SECRET_VARIABLES = new Set(['JWT_SECRET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'HOOKS_SECRET']);

/** A value as an error message may show it: secrets hidden, URL credentials masked, long values cut. */
function shown(name: string, value: unknown): string {
  if (SECRET_VARIABLES.has(name)) return '(hidden)';
  let text = JSON.stringify(value) ?? String(value);
  text = text.replace(/\/\/[^/@\s"]*@/g, '//***@');
  return text.length > 80 ? `${text.slice(0, 77)}..."` : text;
}

/** Defaults from tus.config.ts, overridden by `env` and then by `overrides`. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const input: Record<string, unknown> = { ...defaults };
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = schema.safeParse({ ...input, ...overrides });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'configuration');
    throw new ConfigError(`invalid configuration: ${name}=${shown(name, input[name])}: ${issue.message}`);
  }
  const config = parsed.data;
  const keys = (['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWT_JWKS_URL'] as const).filter((name) => config[name]);
  if (keys.length > 1) throw new ConfigError(`invalid configuration: ${keys.join(', ')}: only one may be set (tokens are checked with one key)`);
  if (config.STORAGE === 's3' && !config.S3_BUCKET) throw new ConfigError('invalid configuration: S3_BUCKET is required when STORAGE=s3');
  if (Boolean(config.S3_ACCESS_KEY_ID) !== Boolean(config.S3_SECRET_ACCESS_KEY)) {
    throw new ConfigError('invalid configuration: S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together');
  }
  if ((config.HOOKS_URL || config.HOOKS_PRE_CREATE_URL) && !config.HOOKS_SECRET) {
    throw new ConfigError('invalid configuration: HOOKS_SECRET is required when HOOKS_URL or HOOKS_PRE_CREATE_URL is set');
  }
  if (config.MIN_MEDIA_DURATION_SECONDS !== undefined && config.MAX_MEDIA_DURATION_SECONDS !== undefined && config.MIN_MEDIA_DURATION_SECONDS > config.MAX_MEDIA_DURATION_SECONDS) {
    throw new ConfigError('invalid configuration: MIN_MEDIA_DURATION_SECONDS is above MAX_MEDIA_DURATION_SECONDS');
  }
  return config;
}
