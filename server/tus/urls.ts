import type { Request } from 'express';

/** Where tus uploads live; upload URLs are `<origin>/files/<id>`. */
export const UPLOADS_PATH = '/files';

const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** The absolute URL of an upload, built as @tus/server builds its `Location`. */
export function uploadUrl(req: Request, id: string): string {
  return `${req.protocol}://${req.get('host')}${UPLOADS_PATH}/${id}`;
}

/**
 * The upload id in an upload URL, absolute or relative (`/files/<id>`), or undefined for anything
 * else. The host is not compared: behind a proxy the client may know this server by another name.
 */
export function uploadIdFromUrl(url: string): string | undefined {
  let pathname: string;
  try {
    pathname = new URL(url, 'http://any.invalid').pathname;
  } catch {
    return undefined;
  }
  const prefix = `${UPLOADS_PATH}/`;
  if (!pathname.startsWith(prefix)) return undefined;
  const id = pathname.slice(prefix.length).replace(/\/$/, '');
  return UPLOAD_ID.test(id) ? id : undefined;
}
