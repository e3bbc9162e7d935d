#!/usr/bin/env node
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from './config.js';
import { openDatabase } from './db/database.js';
import { SEEDED_RESOURCE_TYPES } from './db/migrations/0002_metadefs.js';
import { exportDefinitions, loadDefinitions } from './metadefs/loader.js';
import { MetadefsRepo } from './metadefs/repo.js';
import { importGlanceCommand } from './migrate/glance/command.js';

/**
 * imago-manage: operator commands run next to (or instead of) a running
 * server, against the database its configuration names (IMAGO_CONFIG,
 * IMAGO_DATA_DIR, IMAGO_DATABASE_URL, as for `imago`).
 */

const USAGE = `usage: imago-manage <command> [options]

commands:
  db-sync                       create or upgrade the database schema
  db-load-metadefs [options] [PATH]
                                load metadata definition files (Glance's JSON format)
                                from a folder or one file; default: the sample set
                                shipped with Imago
      --merge                   add what is missing to namespaces that already exist
      --prefer-new              with --merge: also replace what differs
      --overwrite               with --merge: drop existing namespaces and load afresh
  db-unload-metadefs            remove every namespace (and resource types other
                                than the built-in ones)
  db-export-metadefs PATH       write one definition file per namespace into PATH
  import-glance [options] GLANCE_DATABASE_URL
                                copy every image of a Glance database (mysql://...
                                or postgresql://..., read only) into Imago, with its
                                data; images already in Imago are left alone
      --dry-run                 only list what would be done
      --store=ID                the store copied data goes to (default: the default
                                store); data in a Glance directory that is also an
                                Imago filesystem store is adopted in place

Glance's spellings (db_load_metadefs, --prefer_new...) are accepted too.`;

class UsageError extends Error {}

/** The sample definitions shipped with Imago: <package>/metadefs, from src/ or dist/src/. */
function bundledDefinitions(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ['..', '../..']) {
    const dir = path.resolve(here, up, 'metadefs');
    if (existsSync(path.join(here, up, 'package.json')) && existsSync(dir)) return dir;
  }
  throw new UsageError('no PATH given and the bundled metadefs/ folder was not found');
}

interface Parsed {
  command: string;
  flags: Set<string>;
  /** --name=value options, by name */
  values: Map<string, string>;
  args: string[];
}

function parse(argv: string[]): Parsed {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') throw new UsageError('');
  const flags = new Set<string>();
  const values = new Map<string, string>();
  const args: string[] = [];
  for (const a of rest) {
    if (!a.startsWith('--')) args.push(a);
    else {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq).replace(/_/g, '-');
      flags.add(name);
      if (eq >= 0) values.set(name, a.slice(eq + 1));
    }
  }
  return { command: command.replace(/_/g, '-'), flags, values, args };
}

function onlyFlags(p: Parsed, allowed: string[]): void {
  for (const f of p.flags) if (!allowed.includes(f)) throw new UsageError(`unknown option --${f} for ${p.command}`);
}

async function run(p: Parsed): Promise<number> {
  const config = loadConfig();
  const { db, close } = await openDatabase(config.database.url);
  try {
    const repo = new MetadefsRepo(db);
    switch (p.command) {
      case 'db-sync':
        onlyFlags(p, []);
        console.log('database schema is up to date');
        return 0;
      case 'db-load-metadefs': {
        onlyFlags(p, ['merge', 'prefer-new', 'overwrite']);
        const mode = { merge: p.flags.has('merge'), preferNew: p.flags.has('prefer-new'), overwrite: p.flags.has('overwrite') };
        if (!mode.merge && (mode.preferNew || mode.overwrite)) throw new UsageError('--prefer-new and --overwrite only work together with --merge');
        if (mode.preferNew && mode.overwrite) throw new UsageError('choose one of --prefer-new and --overwrite');
        const source = path.resolve(p.args[0] ?? bundledDefinitions());
        if (!existsSync(source)) throw new UsageError(`${source} does not exist`);
        const results = await loadDefinitions(repo, source, mode);
        if (results.length === 0) console.log(`no *.json definition files in ${source}`);
        for (const r of results) {
          if (r.error) console.error(`${path.basename(r.file)}: not loaded: ${r.error}`);
          else if (r.outcome === 'skipped') console.log(`${path.basename(r.file)}: namespace ${r.namespace} already exists, left as it is (use --merge)`);
          else console.log(`${path.basename(r.file)}: namespace ${r.namespace} ${r.outcome}`);
        }
        return results.some((r) => r.error) ? 1 : 0;
      }
      case 'db-unload-metadefs': {
        onlyFlags(p, []);
        const n = await repo.unload(SEEDED_RESOURCE_TYPES);
        console.log(`removed ${n} namespace(s)`);
        return 0;
      }
      case 'db-export-metadefs': {
        onlyFlags(p, []);
        if (!p.args[0]) throw new UsageError('db-export-metadefs needs a PATH to write into');
        const files = await exportDefinitions(repo, path.resolve(p.args[0]));
        for (const f of files) console.log(`wrote ${f}`);
        return 0;
      }
      case 'import-glance': {
        onlyFlags(p, ['dry-run', 'store']);
        if (p.args.length !== 1) throw new UsageError('import-glance needs the Glance database URL (as in glance-api.conf [database] connection)');
        if (p.flags.has('store') && !p.values.get('store')) throw new UsageError('--store needs a value: --store=ID');
        return await importGlanceCommand(config, db, p.args[0], { dryRun: p.flags.has('dry-run'), targetStoreId: p.values.get('store') });
      }
      default:
        throw new UsageError(`unknown command ${p.command}`);
    }
  } finally {
    await close();
  }
}

async function main(): Promise<void> {
  try {
    process.exitCode = await run(parse(process.argv.slice(2)));
  } catch (err) {
    if (err instanceof UsageError) {
      if (!err.message) {
        console.log(USAGE);
        return;
      }
      console.error(`imago-manage: ${err.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (err instanceof ConfigError) {
      console.error(`imago-manage: ${err.message}`);
      process.exitCode = 2;
    } else {
      console.error('imago-manage:', err instanceof Error ? err.message : err);
      process.exitCode = 1;
    }
  }
}

await main();
