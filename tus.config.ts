// Typed defaults for tusgate. Every value can be overridden by the environment
// variable of the same name (see README "Configuration"); server/config.ts
// validates the result at start-up.

export const LEGACY_MIME_TYPES = [
  'video/mp4', 'video/webm', 'video/ogg', 'video/avi', 'video/mov',
  'audio/mp3', 'audio/wav', 'audio/ogg', 'audio/aac', 'audio/webm',
  'image/jpeg', 'image/png', 'image/gif', 'image/webp',
  'text/plain',
];

const defaults = {
  PORT: 1080,
  HOST: '127.0.0.1',
  DATA_DIR: './data',
  JWT_SECRET: undefined as string | undefined,
  JWT_PUBLIC_KEY: undefined as string | undefined,
  JWT_JWKS_URL: undefined as string | undefined,
  JWT_ISSUER: undefined as string | undefined,
  JWT_AUDIENCE: undefined as string | undefined,
  JWT_USER_CLAIM: 'sub',
  ADMIN_USERS: [] as string[],
  MAX_FILE_SIZE: 100_000_000,
  MAX_CHUNK_SIZE: 10_485_760,
  ALLOWED_MIME_TYPES: [...LEGACY_MIME_TYPES, 'video/quicktime', 'audio/mpeg', 'audio/mp4'],
  UPLOAD_EXPIRY_SECONDS: 86_400,
  SWEEP_INTERVAL_SECONDS: 60,
  MAX_ACTIVE_UPLOADS_PER_USER: 10,
  UPLOADS_PER_HOUR_PER_USER: 100,
  FILES_PUBLIC: true,
  CORS_ORIGINS: ['http://localhost:3000', 'http://127.0.0.1:3000'],
  STORAGE: 'file' as 'file' | 's3',
  /** STORAGE=s3: the bucket (required), and the endpoint of an S3-compatible store (default: AWS). */
  S3_BUCKET: undefined as string | undefined,
  S3_ENDPOINT: undefined as string | undefined,
  S3_REGION: 'us-east-1',
  /** Without these, the AWS SDK's own chain (AWS_* variables, instance roles) is used. */
  S3_ACCESS_KEY_ID: undefined as string | undefined,
  S3_SECRET_ACCESS_KEY: undefined as string | undefined,
  /** `true` for stores addressed as host/bucket (MinIO, Ceph radosgw) instead of bucket.host. */
  S3_FORCE_PATH_STYLE: false,
  REDIS_URL: undefined as string | undefined,
  MAX_IMAGE_PIXELS: 100_000_000,
  MAX_MEDIA_DURATION_SECONDS: undefined as number | undefined,
  MIN_MEDIA_DURATION_SECONDS: undefined as number | undefined,
  HOOKS_URL: undefined as string | undefined,
  HOOKS_SECRET: undefined as string | undefined,
  /** Empty: every event type. */
  HOOKS_EVENTS: [] as string[],
  HOOKS_PRE_CREATE_URL: undefined as string | undefined,
  HOOKS_TIMEOUT_MS: 5000,
  HOOKS_PRE_CREATE_FAIL_OPEN: false,
  HOOKS_MAX_AGE_SECONDS: 86_400,
  /** First retry delay of a failed delivery; it doubles with each attempt (with jitter), up to an hour. */
  HOOKS_RETRY_BASE_MS: 1000,
  /** Below the 10 s a container runtime waits after SIGTERM before it kills (docker stop). */
  SHUTDOWN_GRACE_MS: 8_000,
  REQUEST_IDLE_TIMEOUT_MS: 60_000,
  LOG_LEVEL: 'info',
};

export default defaults;
