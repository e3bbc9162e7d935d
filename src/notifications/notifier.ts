import { randomUUID } from 'node:crypto';
import type { Image } from '../domain/image.js';
import type { Task } from '../domain/task.js';
import type { EventSink, Notification, Priority } from './sink.js';
import { imagePayload, importProperties, memberPayload, nowIso, sendPayload, taskPayload, type MemberRecord } from './payloads.js';

export type TaskEvent = 'create' | 'run' | 'processing' | 'success' | 'failure' | 'delete';
export type MemberEvent = 'create' | 'update' | 'delete';

/** Python's str(datetime.utcnow()): `2026-12-03 15:07:26.123000`. */
function pythonUtcNow(): string {
  const iso = new Date().toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}000`;
}

/**
 * Whether an event type is switched off by `disabled` (Glance's
 * disabled_notifications): an entry names one type (`image.update`) or a
 * group, which is any dotted prefix (`image` covers image.*, `image.member`
 * covers image.member.*; Glance itself only matches the first segment).
 */
export function isDisabled(eventType: string, disabled: readonly string[]): boolean {
  return disabled.some((d) => eventType === d || eventType.startsWith(`${d}.`));
}

/**
 * What services call after a change has committed: one method per Glance
 * event, building Glance's payload and handing the envelope to the sink
 * (which never blocks). Services hold it as `events`.
 */
export class Notifier {
  constructor(
    private readonly sink: EventSink,
    private readonly opts: { publisherId: string; disabled: readonly string[]; active?: boolean },
  ) {
    this.active = opts.active ?? true;
  }

  private readonly active: boolean;

  /** Whether `eventType` goes anywhere: lets a caller skip work (a read) that only an event needs. */
  wants(eventType: string): boolean {
    return this.active && !isDisabled(eventType, this.opts.disabled);
  }

  /**
   * Sends one event unless it is disabled; never throws. The payload is
   * built only for an event that goes somewhere: with the default noop driver
   * every create, update and delete would otherwise build Glance's payload
   * for nobody (measured: 4 % of a create's CPU, docs/benchmarks.md).
   */
  emit(eventType: string, payload: () => unknown, priority: Priority = 'INFO'): void {
    if (!this.wants(eventType)) return;
    const n: Notification = { message_id: randomUUID(), publisher_id: this.opts.publisherId, event_type: eventType, priority, payload: payload(), timestamp: pythonUtcNow() };
    try {
      this.sink.send(n);
    } catch {
      // a driver's bug must not fail a change that has committed
    }
  }

  imageCreated(image: Image): void {
    this.emit('image.create', () => imagePayload(image));
  }

  imageUpdated(image: Image): void {
    this.emit('image.update', () => imagePayload(image));
  }

  imageDeleted(image: Image): void {
    this.emit('image.delete', () => ({ ...imagePayload(image), deleted: true, deleted_at: nowIso() }));
  }

  /** Data is about to be written (the image is `saving` or `importing`). */
  imagePrepared(image: Image, backend?: string): void {
    this.emit('image.prepare', () => ({ ...imagePayload(image), ...importProperties(image), ...(backend ? { backend } : {}) }));
  }

  /** Data committed into a store. */
  imageUploaded(image: Image, backend?: string): void {
    this.emit('image.upload', () => ({ ...imagePayload(image), ...importProperties(image), ...(backend ? { backend } : {}) }));
  }

  imageActivated(image: Image): void {
    this.emit('image.activate', () => imagePayload(image));
  }

  /** An upload's or import's data committed into `backend`: image.upload, then image.activate when it made the image active. */
  imageDataCommitted(image: Image, backend: string, activated: boolean): void {
    this.imageUploaded(image, backend);
    if (activated) this.imageActivated(image);
  }

  /** An upload that failed: as Glance, a sentence as the payload, at ERROR priority. */
  imageUploadFailed(imageId: string, reason: string): void {
    this.emit('image.upload', () => `Failed to upload image data for image ${imageId}: ${reason}`, 'ERROR');
  }

  /** A download ended: INFO when every byte asked for was sent, ERROR when it was cut short. */
  imageSent(image: Image, bytesSent: number, complete: boolean, receiver: { projectId: string | null; userId: string }): void {
    this.emit('image.send', () => sendPayload(image, bytesSent, receiver), complete ? 'INFO' : 'ERROR');
  }

  member(event: MemberEvent, m: MemberRecord): void {
    this.emit(`image.member.${event}`, () => {
      const payload = memberPayload(m);
      return event === 'delete' ? { ...payload, deleted: true, deleted_at: nowIso() } : payload;
    });
  }

  task(event: TaskEvent, t: Task): void {
    this.emit(`task.${event}`, () => {
      const payload = taskPayload(t);
      return event === 'delete' ? { ...payload, deleted: true, deleted_at: nowIso() } : payload;
    });
  }

  /** metadef_namespace.*, metadef_object.*, metadef_property.*, metadef_resource_type.*, metadef_tag.* */
  metadef(eventType: `metadef_${string}`, payload: Record<string, unknown>): void {
    this.emit(eventType, () => payload);
  }

  close(): Promise<void> {
    return this.sink.close();
  }
}

/** A notifier that sends nothing (the noop driver, and services built without one). */
export function silentNotifier(): Notifier {
  return new Notifier({ send() {}, async close() {} }, { publisherId: 'image.localhost', disabled: [], active: false });
}
