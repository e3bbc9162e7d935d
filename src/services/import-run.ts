import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { RequestContext } from '../auth/context.js';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { ImagesRepo } from '../db/images-repo.js';
import type { TasksRepo } from '../db/tasks-repo.js';
import type { StoreRegistry } from '../stores/registry.js';
import type { UriFilter } from '../import/uri-filter.js';
import type { QuotaChecker } from './quotas.js';
import { Gone, ImagoError, PayloadTooLarge } from '../domain/errors.js';
import type { Image } from '../domain/image.js';
import type { Store } from '../stores/store.js';
import type { InspectionResult } from '../import/inspect/inspector.js';
import { FormatInspection, inspectedVirtualSize, inspectionVerdict, type InspectionPlugin } from '../import/inspection.js';
import type { ChunkTap } from '../stores/metered-stream.js';
import { discard, openHttpSource, type Resolver } from '../import/http-source.js';
import { glanceEndpoint, propertiesToCopy, remoteImage } from '../import/glance-download.js';
import { decompressor, detectCompression, readHead } from '../import/plugins/decompress.js';
import { qemuConvert, qemuFormat, qemuInfo, qemuSafetyProblems } from '../import/plugins/qemu-img.js';
import { propertiesToInject } from '../import/plugins/inject.js';
import { copiedMessage } from '../import/task.js';
import { LOCATION_IMPORT, type ImportRequest, type ImportTaskInput, type Task, type TaskState } from '../domain/task.js';
import { defaultVirtualSize, type DataService, type Written } from './image-data.js';
import type { Staged, StagingService } from './staging.js';
import type { QuotaLease } from '../domain/quota.js';
import { DigestCheck } from './digest-check.js';
import { expectedDigest, expectedFromProperties, type ExpectedDigest } from '../domain/expected-digests.js';

import type { Notifier } from '../notifications/notifier.js';
import type { PropertyProtections } from '../domain/property-protection.js';

/** What one import run uses; the task runner passes its own dependencies (src/runtime.ts builds them). */
export interface ImportRunDeps {
  images: ImagesRepo;
  tasksRepo: TasksRepo;
  stores: StoreRegistry;
  staging: Pick<StagingService, 'get' | 'forget' | 'discard' | 'record' | 'replace'>;
  data: Pick<DataService, 'uploadCap' | 'write' | 'digest'>;
  quotas?: Pick<QuotaChecker, 'admitWriter'>;
  /** format inspection, the same hook as upload's and stage's (absent when the plugin is off) */
  inspection?: InspectionPlugin;
  /** web-download's and glance-download's URL rules */
  filter: UriFilter;
  config: Pick<Config, 'import' | 'auth'>;
  log: Logger;
  /** image.upload / image.activate after each store's commit */
  events: Notifier;
  /** property protections: the properties an import sets are checked against its requester */
  protections?: PropertyProtections;
}

/** A reason an import cannot complete; the message is what the task tells the user. */
export class ImportFailure extends Error {}

/** The source of the bytes failed (not the store they were going to). */
class SourceError extends ImagoError {
  constructor(message: string) {
    super(502, message);
  }
}

/** `body`, with its own errors labelled as the source's. */
function labelled(body: Readable, what: string): Readable {
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  body.on('error', (err) => out.destroy(err instanceof ImagoError ? err : new SourceError(`Reading ${what} failed: ${err.message}`)));
  out.on('close', () => {
    if (!body.readableEnded) body.destroy();
  });
  body.pipe(out);
  return out;
}

/** Where the bytes for the target stores come from. */
interface Source {
  store: Store;
  url: string;
  size: number;
  md5: string | null;
  sha512: string | null;
  /** a staged object may be moved into a store instead of copied */
  staged: boolean;
  /** what format inspection says the virtual size is (null: none); undefined when it did not run */
  virtualSize: number | null | undefined;
}

export interface RunOptions {
  token?: string;
  signal: AbortSignal;
  /** called with a byte count (and the transfer's total when known) as data moves; the runner turns it into "Copied N MiB of M MiB" */
  progress: (bytes: number, expected?: number) => void;
  resolve?: Resolver;
}

/**
 * One execution of an api_image_import task: gets the data (staging,
 * web-download, glance-download, or the image's own store for copy-image),
 * runs the plugins, writes every target store, and records each copy only
 * once verified. Resumable: stores already recorded by an earlier attempt
 * (task state) are skipped.
 */
export class ImportRun {
  private readonly input: ImportTaskInput;
  private readonly req: ImportRequest;
  private readonly imageId: string;
  private readonly state: TaskState;
  private readonly allMustSucceed: boolean;
  private readonly ctx: RequestContext;
  /** the task was ended (success) by the commit that activated the image */
  ended = false;

  constructor(
    private readonly deps: ImportRunDeps,
    private readonly task: Task,
    private readonly opts: RunOptions,
  ) {
    this.input = task.input as unknown as ImportTaskInput;
    this.req = this.input.import_req;
    this.imageId = this.input.image_id;
    this.state = task.state;
    this.state.committed ??= [];
    this.state.failed ??= {};
    this.allMustSucceed = this.req.all_stores_must_succeed ?? true;
    this.ctx = {
      userId: task.userId ?? '',
      projectId: task.owner,
      roles: this.state.roles ?? [],
      requestId: task.requestId ?? task.id,
      isAdmin: (this.state.roles ?? []).includes('admin'),
      token: opts.token,
    };
  }

  get method(): string {
    return this.req.method.name;
  }

  get stores(): string[] {
    return this.input.backend;
  }

  get failedStores(): Record<string, string> {
    return this.state.failed!;
  }

  /** Runs the import; resolves with the final task message or throws ImportFailure / the abort reason. */
  async run(): Promise<string> {
    const image = await this.image();
    if (this.method === 'copy-image') return this.copyImage(image);
    if (this.method === LOCATION_IMPORT) return this.locationImport(image);
    let staged = await this.deps.staging.get(this.imageId);
    if (staged && !(await this.deps.stores.staging.exists(staged.url))) {
      await this.deps.staging.forget(this.imageId, staged.url);
      staged = undefined;
    }
    const remaining = this.stores.filter((s) => !this.state.committed!.includes(s));
    let source: Source;
    let current = image;
    if (staged || remaining.length === 0) {
      if (staged) ({ staged, image: current } = await this.plugins(current, staged));
      source = staged ? this.stagedSource(staged, current) : this.committedSource(current);
    } else if (this.state.committed!.length > 0) {
      source = this.committedSource(current);
    } else {
      staged = await this.fetch(current);
      ({ staged, image: current } = await this.plugins(await this.image(), staged));
      source = this.stagedSource(staged, current);
    }
    await this.toStores(current, source, remaining);
    if (this.ended) {
      await this.deps.staging.discard(this.imageId);
      return this.successMessage(source.size);
    }
    const after = await this.image();
    if (after.status !== 'active') {
      const why = Object.entries(this.failedStores).map(([s, r]) => `${s}: ${r}`).join('; ');
      throw new ImportFailure(`None of the uploads finished${why ? ` (${why})` : ''}.`);
    }
    await this.deps.staging.discard(this.imageId);
    return this.successMessage(source.size);
  }

  /**
   * A location_import task (API 2.17): the object the URL names is read once
   * to measure and hash it; the digests must match the caller's
   * validation_data when given; then the location is recorded and the image
   * turns active in one step. Nothing is copied: the data stays where it is.
   */
  private async locationImport(image: Image): Promise<string> {
    const url = this.req.method.uri!;
    const store = this.deps.stores.owning(url);
    if (!store) throw new ImportFailure(`The location ${url} names no object of a configured store.`);
    const cap = await this.cap(image);
    const body = await store.get(url).catch((err) => {
      throw new ImportFailure(`Reading ${url} failed: ${(err as Error).message}`);
    });
    const what = `the data at ${url}`;
    let got;
    try {
      got = await this.deps.data.digest(labelled(body, what), {
        cap: cap.bytes,
        tooLarge: cap.error,
        signal: this.opts.signal,
        taps: [(chunk, offset) => this.opts.progress(offset + chunk.length)],
      });
    } catch (err) {
      if (this.opts.signal.aborted) throw this.opts.signal.reason;
      throw err instanceof ImagoError ? err : new ImportFailure(`Reading ${url} failed: ${(err as Error).message}`);
    }
    if (got.size === 0) throw new ImportFailure(`The object at ${url} is empty.`);
    const vd = this.req.method.validation_data;
    const mismatch = [
      vd?.checksum !== undefined && vd.checksum.toLowerCase() !== got.md5 ? `checksum is ${got.md5}, validation_data says ${vd.checksum}` : '',
      vd?.os_hash_value !== undefined && vd.os_hash_value.toLowerCase() !== got.sha512 ? `os_hash_value (sha512) is ${got.sha512}, validation_data says ${vd.os_hash_value}` : '',
    ].filter(Boolean);
    if (mismatch.length) throw new ImportFailure(`The data at ${url} does not match its validation_data: ${mismatch.join('; ')}.`);
    const message = this.successMessage(got.size);
    const recorded = await this.deps.tasksRepo.commitStore(this.imageId, this.task.id, {
      storeId: store.info.id,
      url,
      data: { size: got.size, checksum: got.md5, sha512: got.sha512, virtualSize: defaultVirtualSize(image.diskFormat, got.size) },
      activate: true,
      end: { status: 'success', message, result: { image_id: this.imageId }, ttlHours: this.deps.config.import.taskTimeToLiveHours, progress: { bytesDone: got.size, bytesExpected: got.size } },
    });
    if (!recorded) throw new ImportFailure('The image changed hands during the import.');
    this.ended = true;
    if (this.deps.events.wants('image.upload')) this.deps.events.imageDataCommitted((await this.deps.images.get(this.imageId).catch(() => undefined)) ?? image, store.info.id, true);
    return message;
  }

  private successMessage(size: number): string {
    return copiedMessage(size) + (this.state.resumed ? ' (resumed after an interruption)' : '');
  }

  private async image(): Promise<Image> {
    const image = await this.deps.images.get(this.imageId);
    if (!image) throw new Gone(`Image ${this.imageId} was deleted while it was being imported.`);
    if (!(await this.deps.tasksRepo.holdsLock(this.imageId, this.task.id))) {
      throw new ImportFailure('Another operation took over the image (its import lock was released); this import stopped.');
    }
    return image;
  }

  private stagedSource(s: Staged, image: Image): Source {
    return { store: this.deps.stores.staging, url: s.url, size: s.size, md5: s.checksum, sha512: s.sha512, staged: true, virtualSize: s.inspection ? inspectedVirtualSize(image, s.inspection) : undefined };
  }

  /** After a restart, a store this task already wrote is the source for the rest. */
  private committedSource(image: Image): Source {
    const loc = image.locations.find((l) => l.status === 'active' && this.deps.stores.holding(l.storeId));
    if (!loc || image.size === null) throw new ImportFailure('The staged data is gone and no store holds a copy to continue from.');
    return { store: this.deps.stores.holding(loc.storeId)!, url: loc.url, size: image.size, md5: image.checksum, sha512: recordedSha512(image), staged: false, virtualSize: image.virtualSize };
  }

  /** The size cap (or remaining quota); its error must be an ImagoError so that stores pass it through. */
  private cap(image: Image): Promise<{ bytes: number; error: (n: number) => Error }> {
    return this.deps.data.uploadCap(image, this.ctx);
  }

  // ---- getting the data into staging ----

  private async fetch(image: Image): Promise<Staged> {
    if (this.method === 'web-download') return this.webDownload(image);
    if (this.method === 'glance-download') return this.glanceDownload(image);
    throw new ImportFailure('No data is staged for this image (it was removed or never completely staged).');
  }

  private async webDownload(image: Image): Promise<Staged> {
    const e = this.req.expected_digest;
    const src = await this.open(this.req.method.uri!, {});
    return this.stageFrom(image, src.body, src.length, this.req.method.uri!, e ? [expectedDigest(e.algo, e.value, 'expected_digest of the import request')] : []);
  }

  private async glanceDownload(image: Image): Promise<Staged> {
    const m = this.req.method;
    const token = this.opts.token;
    if (!token) throw new ImportFailure('glance-download needs the requesting user\'s token, which Imago does not keep across restarts; import the image again.');
    const endpoint = await glanceEndpoint(this.deps.config.auth.keystone, token, m.glance_region!, m.glance_service_interface ?? 'public').catch(this.asFailure);
    const remote = await remoteImage(endpoint, m.glance_image_id!, token, this.deps.filter, this.opts.signal, this.opts.resolve).catch(this.asFailure);
    if (remote.status !== 'active') throw new ImportFailure(`Source image status should be active instead of ${remote.status}.`);
    if (typeof remote.size !== 'number') throw new ImportFailure(`Size attribute of remote image ${m.glance_image_id} could not be determined.`);
    const props = propertiesToCopy(remote, this.deps.config.import.glanceDownload.extraProperties);
    this.deps.protections?.enforceWrites(Object.keys(props), image.properties, { roles: this.state.roles ?? [], projectId: this.task.owner, userId: this.task.userId ?? '' });
    this.state.previousFormats ??= { disk_format: image.diskFormat, container_format: image.containerFormat };
    this.state.copiedProperties ??= Object.keys(props).filter((k) => !(k in image.properties));
    this.state.previousProperties ??= Object.fromEntries(Object.keys(props).filter((k) => k in image.properties).map((k) => [k, image.properties[k]]));
    await this.deps.tasksRepo.saveState(this.task.id, this.state);
    await this.deps.tasksRepo.updateImage(this.imageId, this.task.id, { disk_format: remote.disk_format ?? null, container_format: remote.container_format ?? null }, props);
    const src = await this.open(`${endpoint}/v2/images/${m.glance_image_id}/file`, { 'x-auth-token': token });
    const staged = await this.stageFrom(await this.image(), src.body, remote.size, `the remote image ${m.glance_image_id}`);
    const mismatch =
      staged.size !== remote.size ? `${staged.size} bytes arrived but the remote image has ${remote.size}`
      : remote.os_hash_algo === 'sha512' && remote.os_hash_value && remote.os_hash_value !== staged.sha512 ? 'the data does not match the remote os_hash_value'
      : remote.checksum && remote.checksum !== staged.checksum ? 'the data does not match the remote checksum'
      : undefined;
    if (mismatch) throw new ImportFailure(`glance-download of ${m.glance_image_id} failed verification: ${mismatch}.`);
    return staged;
  }

  private async open(uri: string, originHeaders: Record<string, string>) {
    return openHttpSource(uri, { filter: this.deps.filter, resolve: this.opts.resolve, signal: this.opts.signal, originHeaders }).catch(this.asFailure);
  }

  private readonly asFailure = (err: unknown): never => {
    if (err instanceof ImagoError || this.opts.signal.aborted) throw this.opts.signal.aborted ? this.opts.signal.reason : err;
    throw new ImportFailure((err as Error).message);
  };

  /** Streams a download into staging, hashed and inspected on the way. */
  private async stageFrom(image: Image, body: Readable, length: number | undefined, what: string, declared: ExpectedDigest[] = []): Promise<Staged> {
    // the bytes as received, before any plugin: the owner_specified properties and expected_digest speak of them
    const check = DigestCheck.of([...expectedFromProperties(image.properties), ...declared]);
    const cap = await this.cap(image);
    if (length !== undefined && length > cap.bytes) {
      discard(body);
      throw cap.error(cap.bytes);
    }
    await this.deps.staging.discard(this.imageId);
    const inspector = this.deps.inspection?.start();
    const quota = await this.admit(image, 'image_stage_total', length, body);
    let written: Written;
    try {
      written = await this.write(this.deps.stores.staging, this.imageId, body, cap, inspector, length, quota, what, check?.taps);
    } finally {
      await quota?.release().catch(() => {});
    }
    const mismatch = check?.problem(written);
    if (mismatch) {
      await this.deps.stores.staging.delete(written.location);
      throw new ImportFailure(mismatch);
    }
    if (length !== undefined && written.size !== length) {
      await this.deps.stores.staging.delete(written.location);
      throw new ImportFailure(`${what} sent ${written.size} bytes but announced ${length}; the transfer was cut short.`);
    }
    const inspection = inspector?.finish(written.size) ?? null;
    await this.deps.staging.record(this.imageId, written, inspection);
    return { imageId: this.imageId, url: written.location, size: written.size, checksum: written.md5, sha512: written.sha512, inspection };
  }

  /** Reserves the owner's quota for bytes this import is about to write (413 → task failure naming the limit). */
  private async admit(image: Image, resource: 'image_stage_total' | 'image_size_total', bytes: number | undefined, body?: Readable): Promise<QuotaLease | undefined> {
    try {
      return await this.deps.quotas?.admitWriter({ owner: image.owner, imageId: this.imageId, writerId: this.task.id, resource, bytes, what: 'this import' });
    } catch (err) {
      if (body) discard(body);
      throw err;
    }
  }

  /**
   * Streams `body` into `store`. Errors of the source (a cut download, a
   * corrupt archive) are told apart from the store's own, so the task says
   * which side failed.
   */
  private async write(store: Store, key: string, body: Readable, cap: { bytes: number; error: (n: number) => Error }, inspector?: { tap: ChunkTap }, expectedSize?: number, quota?: QuotaLease, what = 'the image data', extraTaps: ChunkTap[] = []): Promise<Written> {
    const taps: ChunkTap[] = [(chunk: Buffer, offset: number) => this.opts.progress(offset + chunk.length, expectedSize), ...extraTaps];
    if (inspector) taps.push(inspector.tap);
    try {
      return await this.deps.data.write(store, key, labelled(body, what), { cap: cap.bytes, tooLarge: cap.error, signal: this.opts.signal, taps, expectedSize, quota });
    } catch (err) {
      if (this.opts.signal.aborted) throw this.opts.signal.reason;
      if (err instanceof ImportFailure || err instanceof SourceError || err instanceof PayloadTooLarge) throw err;
      throw new ImportFailure(`Writing the image data to store ${store.info.id} failed: ${(err as Error).message}`);
    }
  }

  // ---- plugins: decompression, inspection, conversion, metadata injection ----

  private async plugins(image: Image, staged: Staged): Promise<{ staged: Staged; image: Image }> {
    const p = this.deps.config.import.plugins;
    if (p.decompression) {
      const kind = detectCompression(await readHead(await this.deps.stores.staging.get(staged.url, { start: 0, end: 5 }), 6));
      if (kind) {
        const attrs: Record<string, string> = image.containerFormat === 'compressed' ? { container_format: 'bare' } : {};
        const src = (await this.deps.stores.staging.get(staged.url)).pipe(decompressor(kind));
        staged = await this.rewrite(image, staged, 'decompressed', src, attrs);
        image = await this.image();
      }
    }
    let inspection = staged.inspection;
    if (p.formatInspection) {
      inspection ??= await this.inspect(staged);
      const verdict = inspectionVerdict(image, inspection);
      if (verdict) throw new ImportFailure(verdict.message);
    }
    const to = p.conversion.outputFormat;
    const from = inspection?.format ?? image.diskFormat ?? 'raw';
    if (p.conversion.enabled && from !== to && from !== 'iso' && qemuFormat(from)) {
      staged = await this.convert(image, staged, from, to);
      image = await this.image();
    }
    const inject = propertiesToInject(p.injectMetadata, this.state.roles ?? []);
    if (Object.keys(inject).length) {
      this.deps.protections?.enforceWrites(Object.keys(inject), image.properties, { roles: this.state.roles ?? [], projectId: this.task.owner, userId: this.task.userId ?? '' });
      await this.deps.tasksRepo.updateImage(this.imageId, this.task.id, {}, inject);
      image = await this.image();
    }
    return { staged, image };
  }

  private async inspect(staged: Staged): Promise<InspectionResult> {
    const inspector = (this.deps.inspection ?? new FormatInspection()).start();
    let offset = 0;
    for await (const chunk of await this.deps.stores.staging.get(staged.url)) {
      inspector.tap(chunk as Buffer, offset);
      offset += (chunk as Buffer).length;
    }
    return inspector.finish(staged.size);
  }

  private async convert(image: Image, staged: Staged, from: string, to: string): Promise<Staged> {
    await mkdir(this.deps.config.import.workDir, { recursive: true });
    const out = path.join(this.deps.config.import.workDir, `${this.task.id}.${to}`);
    // qemu-img reads a local file: a staged object elsewhere (S3 staging) is fetched to the work dir first.
    const local = staged.url.startsWith('file:') ? undefined : path.join(this.deps.config.import.workDir, `${this.task.id}.source.${from}`);
    try {
      if (local) {
        await pipelineAsync(await this.deps.stores.staging.get(staged.url), createWriteStream(local), { signal: this.opts.signal }).catch((err) => {
          throw this.opts.signal.aborted ? this.opts.signal.reason : new ImportFailure(`Fetching the staged data for conversion failed: ${(err as Error).message}`);
        });
      }
      const file = local ?? fileURLToPath(staged.url);
      const info = await qemuInfo(file, from).catch(this.asFailure);
      const problems = qemuSafetyProblems(info, from, file);
      if (problems.length) throw new ImportFailure(`Image is not safe to convert: ${problems.join('; ')}.`);
      await qemuConvert(file, from, out, to, this.opts.signal).catch(this.asFailure);
      const converted = await this.rewrite(image, staged, 'converted', createReadStream(out, { highWaterMark: 1024 * 1024 }), { disk_format: to });
      if (to !== 'raw') {
        const outInfo = converted.inspection?.virtualSize ?? info['virtual-size'] ?? null;
        await this.deps.tasksRepo.updateImage(this.imageId, this.task.id, { virtual_size: outInfo });
      }
      return converted;
    } finally {
      await rm(out, { force: true });
      if (local) await rm(local, { force: true });
    }
  }

  /** Replaces the staged object by `source` (decompressed or converted data), with fresh digests and inspection. */
  private async rewrite(image: Image, staged: Staged, tag: string, source: Readable, attrs: Record<string, string>): Promise<Staged> {
    const inspector = this.deps.inspection?.start();
    const written = await this.write(this.deps.stores.staging, `${this.imageId}-${tag}`, source, await this.cap(image), inspector, undefined, undefined, `the ${tag} data`);
    const inspection = inspector?.finish(written.size) ?? null;
    await this.deps.staging.replace(this.imageId, written, inspection, attrs);
    await this.deps.stores.staging.delete(staged.url);
    return { imageId: this.imageId, url: written.location, size: written.size, checksum: written.md5, sha512: written.sha512, inspection };
  }

  // ---- writing the target stores ----

  /**
   * Writes every remaining store, several at once. A staged object is moved
   * (renamed) into one store that can adopt it, after the copies that read it;
   * its digests are the ones computed while staging. Every copy is hashed
   * and must match before it is recorded.
   */
  private async toStores(image: Image, source: Source, remaining: string[]): Promise<void> {
    const d = this.deps;
    const adoptTarget = source.staged && source.md5 && source.sha512 ? remaining.find((id) => d.stores.byId.get(id)?.canAdopt(source.store)) : undefined;
    const copies = remaining.filter((id) => id !== adoptTarget);
    const virtualSize = this.virtualSize(image, source);
    let left = remaining.length;
    const siblings = new AbortController();
    const abortAll = (err: unknown) => siblings.abort(err);
    this.opts.signal.addEventListener('abort', () => abortAll(this.opts.signal.reason), { once: true });

    const one = async (storeId: string, adoptFirst: boolean) => {
      let adopt = adoptFirst;
      const store = d.stores.byId.get(storeId)!;
      let written: Written | undefined;
      try {
        if (siblings.signal.aborted) throw siblings.signal.reason;
        written = adopt ? await this.adopt(store, source).catch(() => undefined) : undefined;
        // A rename can still fail (a bind mount of the same device: EXDEV); the staged object is then copied.
        if (!written) {
          adopt = false;
          written = await this.copy(store, source, siblings.signal);
        }
        const activate = this.method !== 'copy-image' && (!this.allMustSucceed || --left === 0);
        const data = this.method === 'copy-image' ? undefined : { size: written.size, checksum: written.md5, sha512: written.sha512, virtualSize };
        // The last store of an all-must-succeed import: the image turns active and the task ends in one step.
        const end = activate && this.allMustSucceed
          ? { status: 'success' as const, message: this.successMessage(source.size), result: { image_id: this.imageId }, ttlHours: d.config.import.taskTimeToLiveHours, progress: { bytesDone: source.size, bytesExpected: source.size } }
          : undefined;
        const recorded = await d.tasksRepo.commitStore(this.imageId, this.task.id, { storeId, url: written.location, data, activate, end });
        if (!recorded) {
          await store.delete(written.location).catch(() => {});
          await this.image();
          throw new ImportFailure('The image changed hands during the import.');
        }
        if (d.events.wants('image.upload')) d.events.imageDataCommitted((await d.images.get(this.imageId).catch(() => undefined)) ?? image, storeId, activate);
        if (adopt) await d.staging.forget(this.imageId, source.url);
        this.state.committed!.push(storeId);
        if (end) this.ended = true;
        else await d.tasksRepo.saveState(this.task.id, this.state);
      } catch (err) {
        if (this.opts.signal.aborted || err instanceof Gone) throw this.opts.signal.aborted ? this.opts.signal.reason : err;
        // Once one store failed an all-must-succeed import, the others' errors are only the abort.
        if (siblings.signal.aborted) throw siblings.signal.reason;
        const reason = (err as Error).message;
        this.failedStores[storeId] = reason;
        if (this.allMustSucceed) {
          const failure = new ImportFailure(`Import to store ${storeId} failed: ${reason}`);
          abortAll(failure);
          throw failure;
        }
        d.log.warn({ task: this.task.id, store: storeId, reason }, 'import to one store failed; going on with the others (all_stores_must_succeed is false)');
        await d.tasksRepo.recordFailedStore(this.imageId, this.task.id, storeId);
      }
    };

    // Quota: every store's copy counts toward image_size_total (copy-image was checked when requested).
    const quota = this.method === 'copy-image' || remaining.length === 0 ? undefined : await this.admit(image, 'image_size_total', source.size * remaining.length);
    try {
      await mapLimit(copies, d.config.import.maxParallelStores, (id) => one(id, false));
      if (adoptTarget) await one(adoptTarget, true);
    } finally {
      await quota?.release().catch(() => {});
    }
  }

  /** Inspection's answer when it ran (as on upload), else what conversion recorded, else raw/iso's own size. */
  private virtualSize(image: Image, source: Source): number | null {
    if (source.virtualSize !== undefined) return source.virtualSize;
    return image.virtualSize ?? defaultVirtualSize(image.diskFormat, source.size);
  }

  private async adopt(store: Store, source: Source): Promise<Written> {
    const put = await store.adopt(source.store, source.url, this.imageId);
    this.opts.progress(put.size, put.size);
    return { location: put.location, size: put.size, md5: source.md5!, sha512: source.sha512! };
  }

  /** Copies the source into `store` and proves the copy is the same bytes (invariant 8). */
  private async copy(store: Store, source: Source, signal: AbortSignal): Promise<Written> {
    const body = await source.store.get(source.url);
    const tooLarge = () => new PayloadTooLarge(`The source object in ${source.store.info.id} is larger than the image's recorded size.`);
    const onAbort = () => body.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    let written: Written;
    try {
      written = await this.write(store, this.imageId, body, { bytes: source.size, error: tooLarge }, undefined, source.size, undefined, `the image from store ${source.store.info.id}`);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    // The strongest digest the image has: sha512, else md5; an image migrated without digests has its size only.
    const same = written.size === source.size && (source.sha512 ? written.sha512 === source.sha512 : source.md5 ? written.md5 === source.md5 : true);
    if (!same) {
      await store.delete(written.location).catch(() => {});
      throw new ImportFailure(`the copy written to ${store.info.id} does not match the image's recorded size and hash`);
    }
    return written;
  }

  // ---- copy-image ----

  private async copyImage(image: Image): Promise<string> {
    const loc = image.locations.find((l) => l.status === 'active' && this.deps.stores.holding(l.storeId));
    if (!loc || image.size === null) throw new ImportFailure('The image has no data in any store to copy from.');
    const present = new Set(image.locations.filter((l) => l.status === 'active').map((l) => l.storeId));
    const remaining = this.stores.filter((s) => !this.state.committed!.includes(s) && !present.has(s));
    const source: Source = { store: this.deps.stores.holding(loc.storeId)!, url: loc.url, size: image.size, md5: image.checksum, sha512: recordedSha512(image), staged: false, virtualSize: image.virtualSize };
    await this.toStores(image, source, remaining);
    return this.successMessage(image.size);
  }
}

/** Runs `fn` on every item, at most `limit` at once; rejects with the first failure once all have settled. */
async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  let firstError: unknown;
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      try {
        await fn(item);
      } catch (err) {
        firstError ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (firstError !== undefined) throw firstError;
}

/** The image's sha512, when its multihash is one (images migrated from Glance may carry sha256 or none). */
function recordedSha512(image: Image): string | null {
  return image.osHashAlgo === 'sha512' ? image.osHashValue : null;
}
