import { readFileSync } from 'node:fs';
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import type { Policy } from '../domain/policy.js';
import { parseProtectionFile, PropertyProtections } from '../domain/property-protection.js';

/**
 * The property protections of `config.propertyProtection`, read and checked
 * once at start: a missing file, a pattern that does not compile, an unknown
 * or missing operation, or (policies) a rule the policy lacks stops the
 * start with a ConfigError listing every problem. Undefined when not
 * configured: every property is open.
 */
export function loadPropertyProtections(config: Pick<Config, 'propertyProtection'>, policy: Policy): PropertyProtections | undefined {
  const pp = config.propertyProtection;
  if (!pp) return undefined;
  let text: string;
  try {
    text = readFileSync(pp.file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read property protection file ${pp.file}: ${(err as Error).message}`);
  }
  try {
    const rules = parseProtectionFile(text, pp.ruleFormat, { ruleExists: (name) => Object.hasOwn(policy.source, name) });
    return new PropertyProtections(rules, pp.ruleFormat, policy);
  } catch (err) {
    throw new ConfigError(`property protection file ${pp.file} (ruleFormat ${pp.ruleFormat}):\n  - ${(err as Error).message}`);
  }
}
