import { readFileSync, statSync, unwatchFile, watchFile } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import { Policy } from '../domain/policy.js';
import { parsePolicyDocument } from '../domain/policy-file.js';
import type { Logger } from 'pino';

function policyPath(config: Config): string | undefined {
  return config.policyFile ? path.resolve(config.dataDir, config.policyFile) : undefined;
}

function readOverrides(file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read policy file ${file}: ${(err as Error).message}`);
  }
  return parsePolicyDocument(text, `policy file ${file}`);
}

/** The policy at start: defaults plus the operator's file. A bad file stops the start with a message naming the rule. */
export function loadPolicy(config: Config): Policy {
  const file = policyPath(config);
  if (!file) return new Policy();
  try {
    return new Policy(readOverrides(file));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`policy file ${file}: ${(err as Error).message}`);
  }
}

/**
 * Like oslo.policy, picks up edits of the policy file without a restart. A
 * file that no longer parses is logged and ignored; the last good rules stay.
 */
export function watchPolicy(deps: { config: Config; policy: Policy; log: Logger }, intervalMs = 2000): () => void {
  const file = policyPath(deps.config);
  if (!file) return () => {};
  let lastMtime = statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const onChange = (cur: { mtimeMs: number }) => {
    if (cur.mtimeMs === lastMtime || cur.mtimeMs === 0) return;
    lastMtime = cur.mtimeMs;
    try {
      deps.policy.reload(readOverrides(file));
      deps.log.info({ file }, 'policy file reloaded');
    } catch (err) {
      deps.log.error({ file, err: (err as Error).message }, 'policy file changed but is invalid; keeping the previous rules');
    }
  };
  watchFile(file, { interval: intervalMs, persistent: false }, onChange);
  return () => unwatchFile(file, onChange);
}
