import http from 'node:http';
import https from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import type { S3StoreSettings } from '../config.js';
import { ObjectNotFound, StoreFull, StoreUnavailable, passesThrough } from './errors.js';

/** Commands whose body is image data: signed without hashing it. */
const DATA_COMMANDS = new Set(['PutObjectCommand', 'UploadPartCommand']);

/**
 * The SDK client for one S3 store.
 *
 * - Image data is signed as UNSIGNED-PAYLOAD and carries no per-part
 *   checksum (`WHEN_REQUIRED`): otherwise the SDK hashes every byte once more
 *   with SHA-256 (about 2 CPU-seconds per GiB) on top of our md5 and sha512,
 *   and older servers (Swift's s3api) refuse the aws-chunked bodies that
 *   flexible checksums use.
 * - Credentials come from the store's configuration, or else the SDK's
 *   standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, ...).
 * - Sockets are kept alive and pooled: each upload keeps `queueSize` part
 *   requests in flight.
 */
export function createS3Client(s: S3StoreSettings): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: 256 };
  const client = new S3Client({
    endpoint: s.endpoint,
    region: s.region,
    forcePathStyle: s.forcePathStyle ?? s.endpoint !== undefined,
    credentials: s.accessKeyId && s.secretAccessKey ? { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } : undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: s.maxAttempts,
    requestHandler: {
      httpAgent: new http.Agent(agentOptions),
      httpsAgent: new https.Agent(agentOptions),
      connectionTimeout: s.connectTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
    },
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (DATA_COMMANDS.has(context.commandName ?? '') && request.headers) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'imagoUnsignedPayload' },
  );
  return client;
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

export function statusOf(err: unknown): number | undefined {
  return (err as SdkError)?.$metadata?.httpStatusCode;
}

/** True when S3 said the object (or the upload) is not there. */
export function isNotFound(err: unknown): boolean {
  const e = err as SdkError;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.name === 'NoSuchUpload' || (statusOf(err) === 404 && e?.name !== 'NoSuchBucket');
}

/** A short, secret-free description of an SDK or network failure, for logs and error details. */
export function describeS3Error(err: unknown): string {
  const e = err as SdkError;
  const status = statusOf(err);
  const code = e?.code ?? e?.name ?? 'Error';
  return `${code}${status ? ` (HTTP ${status})` : ''}: ${e?.message ?? String(err)}`;
}

/**
 * Maps a failure of an S3 call to the typed store errors: a missing object is
 * ObjectNotFound, a full or over-quota service is StoreFull, and everything
 * else the client cannot fix (unreachable, refused credentials, a missing
 * bucket, server errors) is StoreUnavailable naming the store.
 */
export function s3Error(storeId: string, bucket: string, op: string, err: unknown, location?: string): Error {
  if (passesThrough(err)) return err;
  const e = err as SdkError;
  const status = statusOf(err);
  if (location !== undefined && isNotFound(err)) return new ObjectNotFound(location, storeId);
  if (e?.name === 'EntityTooLarge' || e?.name === 'QuotaExceeded' || status === 413 || status === 507) {
    return new StoreFull(storeId, `${op}: ${describeS3Error(err)}`);
  }
  if (e?.name === 'NoSuchBucket') return new StoreUnavailable(storeId, `${op}: bucket "${bucket}" does not exist`);
  if (status === 403) return new StoreUnavailable(storeId, `${op}: the S3 service refused the credentials or access to bucket "${bucket}"`);
  return new StoreUnavailable(storeId, `${op}: ${describeS3Error(err)}`);
}
