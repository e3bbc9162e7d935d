import type { Config } from '../config.js';
import type { Authenticator } from './context.js';
import { KeystoneAuthenticator, type KeystoneAuthenticatorOptions } from './keystone.js';
import { StaticAuthenticator } from './static.js';

export function createAuthenticator(config: Config, opts: KeystoneAuthenticatorOptions = {}): Authenticator {
  switch (config.auth.mode) {
    case 'static':
      return StaticAuthenticator.fromFiles(config.auth.tokensFile, config.dataDir).auth;
    case 'keystone':
      if (!config.auth.keystone) throw new Error('auth.mode is keystone but auth.keystone is not configured');
      return new KeystoneAuthenticator(config.auth.keystone, opts);
    default:
      throw new Error(`auth mode ${config.auth.mode} is not available`);
  }
}
