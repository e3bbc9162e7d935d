import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Every file under `dir`, recursively, as paths relative to it, sorted ('.tmp/x' included).
 * A directory that does not exist holds nothing: stores create theirs lazily.
 */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return; // missing, or removed while we walk
    }
    for (const n of names) {
      const p = path.join(d, n);
      let isDir: boolean;
      try {
        isDir = statSync(p).isDirectory();
      } catch {
        continue; // a temporary file renamed or removed between readdir and stat
      }
      if (isDir) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}
