// SHA-256 of a File, in a Web Worker so that hashing a large video never blocks the page. The file
// is read slice by slice, so memory stays flat whatever its size; hash-wasm is incremental (Web
// Crypto's digest() takes the whole input at once).
import { createSHA256 } from 'hash-wasm';

export type HashRequest = Blob;
export type HashMessage =
  | { type: 'progress'; bytes: number }
  | { type: 'done'; sha256: string }
  | { type: 'error'; message: string };

// This file is compiled with the DOM library; a worker's global scope needs only these two members.
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<HashRequest>) => void) | null;
  postMessage(message: HashMessage): void;
};

/** Read in slices this large: far fewer round trips than the 64 KiB chunks of Blob.stream(). */
const SLICE = 8 * 1024 * 1024;

scope.onmessage = async (event) => {
  try {
    const file = event.data;
    const hasher = await createSHA256();
    let reported = 0;
    for (let offset = 0; offset < file.size; offset += SLICE) {
      hasher.update(new Uint8Array(await file.slice(offset, offset + SLICE).arrayBuffer()));
      if (Date.now() - reported > 100) {
        reported = Date.now();
        scope.postMessage({ type: 'progress', bytes: Math.min(offset + SLICE, file.size) });
      }
    }
    scope.postMessage({ type: 'done', sha256: hasher.digest('hex') });
  } catch (error) {
    scope.postMessage({ type: 'error', message: (error as Error).message });
  }
};
