import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { makeDataDir } from '../support/server.js';
import { REPO } from '../recovery/child.js';
import { runImago } from './helpers.js';

describe('imago command line', () => {
  test('--help and --version print and exit without starting a server or touching the data dir', async () => {
    const dataDir = path.join(makeDataDir(), 'never-created');
    const env = { IMAGO_DATA_DIR: dataDir, IMAGO_PORT: '0' };
    const help = await runImago(['--help'], env);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: imago/);
    assert.match(help.stdout, /check-config/);
    const version = await runImago(['--version'], env);
    assert.equal(version.code, 0);
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    assert.equal(version.stdout, `imago ${pkg.version}\n`);
    assert.equal(existsSync(dataDir), false);
  });

  test('an unknown option is a usage error, not a start', async () => {
    const r = await runImago(['--hepl'], { IMAGO_PORT: '0' });
    assert.equal(r.code, 64);
    assert.match(r.stderr, /unknown command or option "--hepl"/);
    assert.match(r.stderr, /Usage: imago/);
  });

  test('check-config prints the effective configuration with every secret masked', async () => {
    const dataDir = makeDataDir();
    const file = path.join(dataDir, 'imago.yaml');
    writeFileSync(
      file,
      [
        'port: 9555',
        'auth:',
        '  mode: keystone',
        '  keystone:',
        '    authUrl: http://keystone.example:5000/v3',
        '    username: glance',
        '    password: very-secret-pw',
        '    projectName: service',
      ].join('\n'),
    );
    const r = await runImago(['check-config'], { IMAGO_DATA_DIR: dataDir, IMAGO_CONFIG: file, IMAGO_DATABASE_URL: 'postgres://imago:db-secret@db.example/imago', IMAGO_PORT: '' });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /very-secret-pw|db-secret/);
    const shown = parseYaml(r.stdout) as Record<string, any>;
    assert.equal(shown.port, 9555);
    assert.equal(shown.dataDir, dataDir);
    assert.equal(shown.auth.keystone.password, '***');
    assert.equal(shown.auth.keystone.username, 'glance');
    assert.equal(shown.database.url, 'postgres://imago:***@db.example/imago');
    assert.equal(shown.auth.tokensFile, path.join(dataDir, 'tokens.json'), 'paths that merely mention tokens stay readable');
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('check-config of a bad configuration names the problem and fails', async () => {
    const dataDir = makeDataDir();
    const file = path.join(dataDir, 'imago.json');
    writeFileSync(file, JSON.stringify({ port: 70000, logFormat: 'xml', metrics: { enabled: true, allow: ['10.0.0.0/99', 'somewhere'] }, health: { cacheSeconds: -1 } }));
    const r = await runImago(['check-config'], { IMAGO_DATA_DIR: dataDir, IMAGO_CONFIG: file, IMAGO_PORT: '' });
    assert.equal(r.code, 2);
    // every problem at once
    assert.match(r.stderr, /port must be an integer ≤ 65535, got 70000/);
    assert.match(r.stderr, /logFormat must be one of "json", "pretty", got "xml"/);
    assert.match(r.stderr, /metrics\.allow: "10\.0\.0\.0\/99" is not/);
    assert.match(r.stderr, /metrics\.allow: "somewhere" is not/);
    assert.match(r.stderr, /health\.cacheSeconds must be a number ≥ 0, got -1/);
    assert.equal(r.stdout, '');
    rmSync(dataDir, { recursive: true, force: true });
  });
});
