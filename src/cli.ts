import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { ConfigError, loadConfig, type Config } from './config.js';

/** What the command line asks for; anything but `serve` ends without starting a server. */
export type Command =
  | { kind: 'serve' }
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'check-config' }
  | { kind: 'usage-error'; message: string };

export function parseCommandLine(args: string[]): Command {
  const [first, ...rest] = args;
  if (first === undefined || first === 'serve') {
    return rest.length ? { kind: 'usage-error', message: `unexpected argument "${rest[0]}"` } : { kind: 'serve' };
  }
  if (first === '--help' || first === '-h' || first === 'help') return { kind: 'help' };
  if (first === '--version' || first === '-v' || first === 'version') return { kind: 'version' };
  if (first === 'check-config') {
    return rest.length ? { kind: 'usage-error', message: `check-config takes no arguments, got "${rest[0]}"` } : { kind: 'check-config' };
  }
  return { kind: 'usage-error', message: `unknown command or option "${first}"` };
}

export const USAGE = `Usage: imago [command]

Commands:
  serve           start the image service (the default)
  check-config    validate the configuration and print the effective one, secrets masked
  --help, -h      show this help
  --version, -v   show the version

The configuration comes from defaults, then the YAML or JSON file named by
IMAGO_CONFIG, then IMAGO_* environment variables (IMAGO_DATA_DIR, IMAGO_HOST,
IMAGO_PORT, IMAGO_DATABASE_URL, IMAGO_LOG_LEVEL, IMAGO_LOG_FORMAT, ...).
Every key is described in docs/configuration.md; running Imago in
production in docs/operations.md.
`;

/** The version in the package.json this build ships with. */
export function imagoVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'imago') return pkg.version ?? 'unknown';
    }
    if (path.dirname(dir) === dir) return 'unknown';
    dir = path.dirname(dir);
  }
}

const SECRET_KEY = /password|secret|credential|private|^token$/i;

/** A deep copy with every secret replaced: passwords, keys, credentials in URLs. */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (typeof value === 'string') {
    if (SECRET_KEY.test(key) && value !== '') return '***';
    // postgres://user:password@host/db: keep the user, hide the password
    return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
  }
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, key));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]));
  }
  return value;
}

export function describeConfig(config: Config): string {
  return `# effective Imago configuration (secrets masked)\n${toYaml(maskSecrets(config))}`;
}

/** Runs a command that is not `serve`; returns the exit status. */
export function runCommand(command: Exclude<Command, { kind: 'serve' }>, env: NodeJS.ProcessEnv = process.env): number {
  switch (command.kind) {
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'version':
      process.stdout.write(`imago ${imagoVersion()}\n`);
      return 0;
    case 'usage-error':
      process.stderr.write(`imago: ${command.message}\n\n${USAGE}`);
      return 64;
    case 'check-config':
      try {
        process.stdout.write(describeConfig(loadConfig(env)));
        return 0;
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(`imago: ${err.message}\n`);
        return 2;
      }
  }
}
