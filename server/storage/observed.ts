import { pipeline, Transform, type Readable } from 'node:stream';

/** `source` with `observe` called on each chunk as it passes. */
export function observed(source: Readable, observe: (chunk: Buffer) => void): Readable {
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      observe(chunk);
      done(null, chunk);
    },
  });
  return pipeline(source, tap, () => {});
}
