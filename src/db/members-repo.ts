import type { Db } from './database.js';
import { now } from './database.js';
import type { MemberStatus } from '../domain/visibility.js';

export interface Member {
  imageId: string;
  memberId: string;
  status: MemberStatus;
  createdAt: string;
  updatedAt: string;
}

export class MembersRepo {
  constructor(private readonly db: Db) {}

  async statusOf(imageId: string, memberId: string): Promise<MemberStatus | undefined> {
    const row = await this.db.selectFrom('image_members').select('status').where('image_id', '=', imageId).where('member_id', '=', memberId).executeTakeFirst();
    return row?.status as MemberStatus | undefined;
  }

  async list(imageId: string): Promise<Member[]> {
    const rows = await this.db.selectFrom('image_members').selectAll().where('image_id', '=', imageId).orderBy('created_at').execute();
    return rows.map(toMember);
  }

  async get(imageId: string, memberId: string): Promise<Member | undefined> {
    const row = await this.db.selectFrom('image_members').selectAll().where('image_id', '=', imageId).where('member_id', '=', memberId).executeTakeFirst();
    return row ? toMember(row) : undefined;
  }

  async add(imageId: string, memberId: string): Promise<Member> {
    const ts = now();
    await this.db.insertInto('image_members').values({ image_id: imageId, member_id: memberId, status: 'pending', created_at: ts, updated_at: ts }).execute();
    return (await this.get(imageId, memberId))!;
  }

  async setStatus(imageId: string, memberId: string, status: MemberStatus): Promise<Member | undefined> {
    await this.db.updateTable('image_members').set({ status, updated_at: now() }).where('image_id', '=', imageId).where('member_id', '=', memberId).execute();
    return this.get(imageId, memberId);
  }

  async remove(imageId: string, memberId: string): Promise<boolean> {
    const res = await this.db.deleteFrom('image_members').where('image_id', '=', imageId).where('member_id', '=', memberId).executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  async count(imageId: string): Promise<number> {
    const row = await this.db.selectFrom('image_members').select((eb) => eb.fn.countAll<number>().as('n')).where('image_id', '=', imageId).executeTakeFirst();
    return Number(row?.n ?? 0);
  }
}

function toMember(r: { image_id: string; member_id: string; status: string; created_at: string; updated_at: string }): Member {
  return { imageId: r.image_id, memberId: r.member_id, status: r.status as MemberStatus, createdAt: r.created_at, updatedAt: r.updated_at };
}
