#!/usr/bin/env -S node --max-semi-space-size=4
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig } from './config.js';
import { startServer } from './server/start.js';
import { parseCommandLine, runCommand } from './cli.js';
import { DataDirInUse } from './db/data-dir-lock.js';

async function main(): Promise<void> {
  const command = parseCommandLine(process.argv.slice(2));
  if (command.kind !== 'serve') process.exit(runCommand(command));
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`imago: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const server = await startServer(config, { shutdownGraceMs: config.shutdownGraceSeconds * 1000 });
  const log = server.rt.log;
  log.info({ url: server.url, metricsUrl: server.metricsUrl, dataDir: config.dataDir, database: config.database.url.replace(/\/\/[^@]*@/, '//***@') }, 'Imago is listening');
  if (config.auth.mode === 'static') {
    const tokenFile = path.join(config.dataDir, 'admin-token');
    if (existsSync(tokenFile)) log.info({ adminTokenFile: tokenFile }, `admin token is in ${tokenFile}`);
  }
  let signals = 0;
  const shutdown = (signal: string) => {
    if (++signals > 1) process.exit(1);
    log.info({ signal }, 'shutting down');
    server.stop().then(() => process.exit(0), (err) => {
      log.error({ err }, 'unclean shutdown');
      process.exit(1);
    });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err) => {
  // A configuration the running services refuse (e.g. a store's bucket is missing): the message says it all.
  if (err instanceof ConfigError) {
    console.error(`imago: ${err.message}`);
    process.exit(2);
  }
  if (err instanceof DataDirInUse) {
    console.error(`imago: ${err.message}`);
    process.exit(3);
  }
  console.error('imago: failed to start:', err);
  process.exit(1);
});
