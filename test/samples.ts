/** Small files whose first bytes are what their type says (enough for magic-number detection). */
export const PNG = Buffer.concat([
  Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex'),
  Buffer.alloc(64, 7),
]);
export const JPEG = Buffer.concat([Buffer.from('ffd8ffe000104a46494600010100000100010000', 'hex'), Buffer.alloc(64, 3)]);
export const GIF = Buffer.concat([Buffer.from('GIF89a', 'ascii'), Buffer.alloc(64, 1)]);
/** An ISO base media (MP4) file head: an ftyp box with the isom brand. */
export const MP4 = Buffer.concat([
  Buffer.from('0000001c6674797069736f6d0000020069736f6d69736f32617663316d703431', 'hex'),
  Buffer.alloc(256, 0),
]);
export const TEXT = Buffer.from('just some plain text\n'.repeat(10), 'utf8');
