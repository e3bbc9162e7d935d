import type { Member } from '../../db/members-repo.js';
import { displayTime } from '../../db/database.js';

/** An image member as the API shows it. */
export function memberJson(m: Member): Record<string, unknown> {
  return {
    member_id: m.memberId,
    image_id: m.imageId,
    status: m.status,
    created_at: displayTime(m.createdAt),
    updated_at: displayTime(m.updatedAt),
    schema: '/v2/schemas/member',
  };
}
