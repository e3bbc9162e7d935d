import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from '../domain/json-validator.js';
import { parseNamespaceBody } from './input.js';
import type { LoadMode, LoadOutcome, MetadefsRepo } from './repo.js';

/**
 * Definition files in Glance's format (one namespace per JSON file, as in
 * glance's etc/metadefs): loaded into the catalog by `imago-manage
 * db-load-metadefs`, written back by `db-export-metadefs`.
 */

export interface FileResult {
  file: string;
  namespace?: string;
  outcome?: LoadOutcome;
  error?: string;
}

async function definitionFiles(source: string): Promise<string[]> {
  const info = await stat(source);
  if (info.isFile()) return [source];
  const names = (await readdir(source)).filter((n) => n.endsWith('.json')).sort();
  const files: string[] = [];
  for (const n of names) if ((await stat(path.join(source, n))).isFile()) files.push(path.join(source, n));
  return files;
}

/** Loads every *.json file of `source` (a folder or one file); a bad file is reported and the others still load. */
export async function loadDefinitions(repo: MetadefsRepo, source: string, mode: LoadMode): Promise<FileResult[]> {
  const results: FileResult[] = [];
  for (const file of await definitionFiles(source)) {
    try {
      let raw: unknown;
      try {
        const text = await readFile(file, 'utf8');
        if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) throw new Error(`nested more than ${MAX_JSON_DEPTH} levels deep`);
        raw = JSON.parse(text);
      } catch (err) {
        throw new Error(`not valid JSON: ${(err as Error).message}`);
      }
      const { fields, contents } = parseNamespaceBody(raw);
      const outcome = await repo.loadDefinition({ ...fields, owner: fields.owner ?? 'admin' }, contents, mode);
      results.push({ file, namespace: fields.namespace, outcome });
    } catch (err) {
      results.push({ file, error: (err as Error).message });
    }
  }
  return results;
}

/** A file name for a namespace: OS::Compute::Libvirt → OS-Compute-Libvirt.json. */
export function fileNameFor(namespace: string): string {
  return `${namespace.replace(/::/g, '-').replace(/[^A-Za-z0-9._-]+/g, '_')}.json`;
}

/** Writes one definition file per namespace into `folder`; returns the files written. */
export async function exportDefinitions(repo: MetadefsRepo, folder: string): Promise<string[]> {
  await mkdir(folder, { recursive: true });
  const written: string[] = [];
  for (const ns of await repo.allNamespaces()) {
    const [associations, properties, objects, tags] = await Promise.all([
      repo.associations([ns.id]).then((m) => m.get(ns.id) ?? []),
      repo.listProperties(ns.id),
      repo.listObjects(ns.id),
      repo.listTags(ns.id, { sortKey: 'created_at', sortDir: 'asc' }),
    ]);
    const doc: Record<string, unknown> = {
      namespace: ns.namespace,
      ...(ns.displayName === null ? {} : { display_name: ns.displayName }),
      ...(ns.description === null ? {} : { description: ns.description }),
      visibility: ns.visibility,
      protected: ns.protected,
      ...(ns.owner === null ? {} : { owner: ns.owner }),
      resource_type_associations: associations.map((a) => ({
        name: a.name,
        ...(a.prefix === null ? {} : { prefix: a.prefix }),
        ...(a.propertiesTarget === null ? {} : { properties_target: a.propertiesTarget }),
      })),
      properties: Object.fromEntries(properties.map((p) => [p.name, p.definition])),
      objects: objects.map((o) => ({
        name: o.name,
        ...(o.description === null ? {} : { description: o.description }),
        ...(o.required.length ? { required: o.required } : {}),
        properties: o.properties,
      })),
      tags: tags.map((t) => ({ name: t.name })),
    };
    const file = path.join(folder, fileNameFor(ns.namespace));
    await writeFile(file, JSON.stringify(doc, null, 4) + '\n');
    written.push(file);
  }
  return written;
}
