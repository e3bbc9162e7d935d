import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WebDownloadFilter } from '../../src/config.js';
import { UriFilter, isSpecialAddress } from '../../src/import/uri-filter.js';

const base: WebDownloadFilter = {
  allowedSchemes: ['http', 'https'],
  disallowedSchemes: [],
  allowedHosts: [],
  disallowedHosts: [],
  allowedPorts: [80, 443],
  disallowedPorts: [],
  allowPrivateNetworks: false,
};
const filter = (over: Partial<WebDownloadFilter> = {}) => new UriFilter({ ...base, ...over });
const reason = (f: UriFilter, url: string) => {
  const r = f.checkUrl(url);
  return r.ok ? 'ok' : r.reason;
};

test('special addresses: loopback, private, link-local, metadata, CGNAT, reserved, and IPv6 forms of them', () => {
  const special = ['127.0.0.1', '127.255.0.9', '10.0.0.1', '172.16.5.4', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.100.100.200', '0.0.0.0', '224.0.0.1', '255.255.255.255', '198.18.0.1',
    '::1', '::', 'fe80::1', 'fd00:ec2::254', 'fc00::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.1.2.3', '64:ff9b::a9fe:a9fe', '2002:a9fe:a9fe::1', '::127.0.0.1'];
  for (const ip of special) assert.equal(isSpecialAddress(ip), true, ip);
  for (const ip of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2001:4860:4860::8888', '::ffff:8.8.8.8', '64:ff9b::808:808']) assert.equal(isSpecialAddress(ip), false, ip);
  assert.equal(isSpecialAddress('not an ip'), true);
});

test('schemes, ports and hosts', () => {
  const f = filter();
  assert.equal(reason(f, 'http://example.com/a.img'), 'ok');
  assert.equal(reason(f, 'https://example.com/a.img'), 'ok');
  assert.equal(reason(f, 'https://example.com:443/a.img'), 'ok');
  assert.match(reason(f, 'ftp://example.com/a.img'), /scheme "ftp" is not supported/);
  assert.match(reason(f, 'file:///etc/passwd'), /scheme "file"/);
  assert.match(reason(f, 'gopher://example.com/'), /scheme/);
  assert.match(reason(f, 'http://example.com:8080/a.img'), /port 8080 is not allowed/);
  assert.match(reason(f, 'not a url'), /not a valid URL/);
  assert.match(reason(filter({ allowedSchemes: ['https'] }), 'http://example.com/'), /scheme "http" is not allowed/);
  assert.match(reason(filter({ disallowedSchemes: ['http'] }), 'http://example.com/'), /scheme "http" is not allowed/);
  assert.equal(reason(filter({ allowedPorts: [] }), 'http://example.com:8080/'), 'ok');
  assert.match(reason(filter({ allowedPorts: [], disallowedPorts: [8080] }), 'http://example.com:8080/'), /port 8080/);
  assert.match(reason(filter({ disallowedHosts: ['Example.com'] }), 'http://EXAMPLE.com/'), /host example.com is not allowed/);
  assert.match(reason(filter({ allowedHosts: ['images.example.com'] }), 'http://example.com/'), /host example.com is not allowed/);
  assert.equal(reason(filter({ allowedHosts: ['images.example.com'] }), 'http://images.example.com/x'), 'ok');
});

test('literal addresses are checked before any connection, in every spelling', () => {
  const f = filter();
  for (const url of ['http://127.0.0.1/', 'http://2130706433/', 'http://0x7f.1/', 'http://0177.0.0.1/', 'http://[::1]/', 'http://[::ffff:127.0.0.1]/', 'http://169.254.169.254/latest/meta-data/', 'http://[fd00:ec2::254]/', 'http://10.0.0.5/', 'http://0.0.0.0/']) {
    assert.match(reason(f, url), /private, loopback, link-local or reserved/, url);
  }
  assert.equal(reason(f, 'http://8.8.8.8/'), 'ok');
  assert.equal(reason(f, 'http://[2001:4860:4860::8888]/'), 'ok');
});

test('operators can open private ranges: allowPrivateNetworks, or listing an address or CIDR', () => {
  assert.equal(reason(filter({ allowPrivateNetworks: true }), 'http://10.0.0.5/'), 'ok');
  const cidr = filter({ allowedHosts: ['10.1.0.0/16', 'mirror.internal'] });
  assert.equal(reason(cidr, 'http://10.1.2.3/'), 'ok');
  assert.match(reason(cidr, 'http://10.2.0.1/'), /host 10.2.0.1 is not allowed/);
  assert.equal(cidr.checkAddress('10.1.9.9'), undefined);
  assert.match(cidr.checkAddress('10.2.9.9')!, /private/);
  // a name in allowedHosts does not make its private addresses reachable
  assert.match(filter({ allowedHosts: ['mirror.internal'] }).checkAddress('192.168.0.10')!, /private/);
  // disallowed wins over everything
  const both = filter({ allowPrivateNetworks: true, disallowedHosts: ['10.0.0.0/8'] });
  assert.match(reason(both, 'http://10.3.3.3/'), /host 10.3.3.3 is not allowed/);
  assert.match(both.checkAddress('10.9.9.9')!, /not allowed/);
  assert.equal(both.checkAddress('192.168.1.1'), undefined);
});
