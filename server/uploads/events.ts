import { EventEmitter } from 'node:events';
import type { UploadRecord } from './records.js';

export const FAILURE_REASONS = ['hash', 'type', 'media', 'size', 'expired', 'aborted', 'checksum'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export interface UploadEventMap {
  created: [UploadRecord];
  completed: [UploadRecord];
  failed: [UploadRecord, FailureReason];
  /** One request's bytes were refused (a PATCH whose Upload-Checksum differs); the upload lives on. */
  rejected: [UploadRecord, FailureReason];
  terminated: [UploadRecord];
  expired: [UploadRecord];
  /** Bytes of one request stored into an upload. */
  received: [number];
}

/** Lifecycle events of uploads, whichever door they came through; metrics and hooks listen here. */
export class UploadEvents extends EventEmitter<UploadEventMap> {}
