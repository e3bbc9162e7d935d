/**
 * A test server in its own process, for measurements that must see only the
 * server: memory (started with --expose-gc, so a measurement follows a full
 * GC), open fds, database rows. Driven over IPC by child-server.ts:
 *   {op:'measure'} → process.memoryUsage() after two forced GCs
 *   {op:'rows'}    → row counts of every table
 *   {op:'stop'}    → stops the server and exits
 * Started with argv[2] = a JSON TestServerOptions.
 */
import { sql } from 'kysely';
import { startTestServer } from '../support/server.js';

const TABLES = ['images', 'image_properties', 'image_tags', 'image_locations', 'image_staging', 'image_members', 'tasks', 'quota_reservations'];

const s = await startTestServer(JSON.parse(process.argv[2] ?? '{}'));
const gc = (globalThis as { gc?: () => void }).gc;
process.on('message', async (m: { op: string; id: number }) => {
  const reply = (body: unknown) => process.send!({ id: m.id, body });
  if (m.op === 'measure') {
    gc?.();
    await new Promise((r) => setImmediate(r));
    gc?.();
    reply(process.memoryUsage());
  } else if (m.op === 'rows') {
    const rows: Record<string, number> = {};
    for (const t of TABLES) {
      const r = await sql<{ n: number }>`SELECT count(*) AS n FROM ${sql.table(t)}`.execute(s.rt.db);
      rows[t] = Number(r.rows[0].n);
    }
    reply(rows);
  } else if (m.op === 'stop') {
    await s.close();
    reply('stopped');
    process.exit(0);
  }
});
process.send!({ id: 0, body: { url: s.url, dataDir: s.dataDir } });
