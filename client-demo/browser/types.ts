/** GET /demo/config: what the page shows and enforces before an upload, taken from the server's configuration. */
export interface DemoConfig {
  /** The tus endpoint, relative to the page's origin. */
  endpoint: string;
  maxFileSize: number;
  /** ALLOWED_MIME_TYPES, as configured (shown on the page). */
  allowedTypes: string[];
  /** The same with the other names browsers give those formats (`audio/x-m4a`): what the page lets through. */
  acceptedTypes: string[];
  /** Development mode: the page fetches its token from /demo/token instead of asking for one. */
  devMode: boolean;
  /** FILES_PUBLIC: a finished file's URL opens without a token. Otherwise only its owner may read it. */
  filesPublic: boolean;
}
