/**
 * kv configuration: flags, RAFTCHART_* environment, the JSON cluster file,
 * precedence, the DNS join mode (pattern expansion and resolution with an
 * injected resolver and clock), and a clear ConfigurationError for every bad
 * input.
 */
import t from 'tap';
import { ConfigurationError } from '../../index.js';
import {
  expandDnsPattern,
  loadKvConfig,
  parseKvFile,
  parseKvFlags,
  parsePeerList,
  resolveAll,
  splitHostPort,
  type KvConfigSources,
} from '../../examples/kv/config.js';

const SECRET = 'a-cluster-secret-of-32-bytes-abc';
const PEERS = 'n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003';
const base: KvConfigSources = { env: { RAFTCHART_SECRET: SECRET } };

t.test('flags: peers, derived addresses and defaults', async (t) => {
  const c = await loadKvConfig(['--id', 'n2', '--peers', PEERS], base);
  t.equal(c.id, 'n2');
  t.equal(c.raftListen, '127.0.0.1:7002', 'raft listen from the own peer entry');
  t.equal(c.httpListen, '127.0.0.1:8002', 'HTTP at raft port + 1000');
  t.same(c.peers.map((p) => p.http), ['127.0.0.1:8001', '127.0.0.1:8002', '127.0.0.1:8003']);
  t.equal(c.data, 'data/n2');
  t.equal(c.secret, SECRET);
  t.equal(c.bootstrap, 'auto');
  t.equal(c.clusterId, 'raftchart-kv');
  t.equal(c.maxValueBytes, 1048576);
  t.equal(c.requestTimeoutMs, 10000);

  const d = await loadKvConfig([
    '--id=n1', '--peers', 'n1=ws://10.0.0.1:7001/10.0.0.1:9001,n2=wss://[::1]:7002/[::1]:9002',
    '--raft', '0.0.0.0:7001', '--http', '0.0.0.0:9001', '--data', '/var/kv', '--bootstrap', 'never',
    '--cluster-id', 'prod', '--max-value-bytes', '4096', '--request-timeout-ms', '2000',
  ], base);
  t.same(d.peers, [
    { id: 'n1', raft: 'ws://10.0.0.1:7001', http: '10.0.0.1:9001' },
    { id: 'n2', raft: 'wss://[::1]:7002', http: '[::1]:9002' },
  ]);
  t.equal(d.raftListen, '0.0.0.0:7001');
  t.equal(d.httpListen, '0.0.0.0:9001');
  t.equal(d.data, '/var/kv');
  t.equal(d.bootstrap, 'never');
  t.equal(d.clusterId, 'prod');
  t.equal(d.maxValueBytes, 4096);
  t.equal(d.requestTimeoutMs, 2000);

  const h = await loadKvConfig(['--id', 'n1', '--peers', PEERS, '--http-peers', 'n1=127.0.0.1:9101, n3=127.0.0.1:9103'], base);
  t.same(h.peers.map((p) => p.http), ['127.0.0.1:9101', '127.0.0.1:8002', '127.0.0.1:9103'], '--http-peers overrides');
  t.equal(h.httpListen, '127.0.0.1:9101');

  const solo = await loadKvConfig(['--id', 'solo', '--raft', '127.0.0.1:7100', '--insecure'], { env: {} });
  t.same(solo.peers, [{ id: 'solo', raft: '127.0.0.1:7100', http: '127.0.0.1:8100' }], 'no peers: a cluster of one');
  t.equal(solo.insecure, true);
  t.equal(solo.secret, null);
  const solo2 = await loadKvConfig(['--id', 'solo', '--raft', '127.0.0.1:7100', '--http', '127.0.0.1:0', '--insecure=true'], { env: {} });
  t.equal(solo2.httpListen, '127.0.0.1:0');
});

t.test('precedence: flags > environment > file', async (t) => {
  const file = JSON.stringify({ id: 'n3', peers: [{ id: 'n1', raft: '127.0.0.1:7001', http: '127.0.0.1:8001' }, { id: 'n2', raft: '127.0.0.1:7002' }, { id: 'n3', raft: '127.0.0.1:7003' }], data: 'file-data', clusterId: 'from-file', requestTimeoutMs: 3000, insecure: false });
  const read: string[] = [];
  const sources = (env: Record<string, string>): KvConfigSources => ({ env: { RAFTCHART_SECRET: SECRET, ...env }, readFile: async (p) => (read.push(p), file) });
  const fromFile = await loadKvConfig(['--config', 'cluster.json'], sources({}));
  t.equal(fromFile.id, 'n3');
  t.equal(fromFile.data, 'file-data');
  t.equal(fromFile.clusterId, 'from-file');
  t.equal(fromFile.requestTimeoutMs, 3000);
  t.equal(fromFile.peers[1]?.http, '127.0.0.1:8002', 'a file peer without http gets raft port + 1000');
  const fromEnv = await loadKvConfig([], sources({ RAFTCHART_CONFIG: 'env.json', RAFTCHART_ID: 'n2', RAFTCHART_DATA: 'env-data', RAFTCHART_REQUEST_TIMEOUT_MS: '4000' }));
  t.equal(fromEnv.id, 'n2', 'environment beats file');
  t.equal(fromEnv.data, 'env-data');
  t.equal(fromEnv.requestTimeoutMs, 4000);
  t.equal(fromEnv.clusterId, 'from-file');
  const fromFlags = await loadKvConfig(['--config', 'flag.json', '--id', 'n1', '--data', 'flag-data'], sources({ RAFTCHART_CONFIG: 'env.json', RAFTCHART_ID: 'n2', RAFTCHART_DATA: 'env-data' }));
  t.equal(fromFlags.id, 'n1', 'flags beat environment');
  t.equal(fromFlags.data, 'flag-data');
  t.same(read, ['cluster.json', 'env.json', 'flag.json'], '--config beats RAFTCHART_CONFIG');
  const envPeers = await loadKvConfig([], sources({ RAFTCHART_CONFIG: 'env.json', RAFTCHART_PEERS: 'n2=127.0.0.1:7102,n9=127.0.0.1:7109', RAFTCHART_ID: 'n9' }));
  t.same(envPeers.peers.map((p) => p.id), ['n2', 'n9'], 'RAFTCHART_PEERS replaces the file list');
  const bools = await loadKvConfig(['--id', 'a', '--raft', '127.0.0.1:1'], { env: { RAFTCHART_INSECURE: 'yes', RAFTCHART_SEED: 'ignored' } });
  t.equal(bools.insecure, true, 'boolean variables; unrelated RAFTCHART_ variables are ignored');

  const list = await loadKvConfig(['--config', 'list.json', '--id', 'b'], { env: { RAFTCHART_SECRET: SECRET }, readFile: async () => '[{"id":"a","raft":"h1:7000","http":"h1:80"},{"id":"b","raft":"h2:7000","http":"h2:80"}]' });
  t.same(list.peers.map((p) => p.http), ['h1:80', 'h2:80'], 'a file with a bare list is the static join');
  t.equal(list.raftListen, 'h2:7000');
});

t.test('DNS patterns expand', async (t) => {
  t.same(expandDnsPattern('kv-{0..2}.kv.default.svc'), ['kv-0.kv.default.svc', 'kv-1.kv.default.svc', 'kv-2.kv.default.svc']);
  t.same(expandDnsPattern('{a,b}-{1..2}.example'), ['a-1.example', 'a-2.example', 'b-1.example', 'b-2.example'], 'groups multiply');
  t.same(expandDnsPattern('x.svc, kv-{8..10}.svc'), ['x.svc', 'kv-8.svc', 'kv-9.svc', 'kv-10.svc'], 'top-level commas join patterns');
  t.same(expandDnsPattern('plain.host'), ['plain.host']);
  const bad: [string, RegExp][] = [
    ['kv-{0..2.svc', /unclosed/],
    ['kv-0..2}.svc', /unmatched/],
    ['kv-{{0..2}}', /nested/],
    ['kv-{2..0}', /backwards/],
    ['kv-{0..5000}', /too large/],
    ['kv-{}', /empty choice/],
    ['kv-{a,}', /empty choice/],
    ['a,,b', /empty name/],
    ['kv_{0..1}', /not a DNS name/],
    ['{a,a}.svc', /twice/],
    ['{0..9}{0..9}{0..9}{0..1}', /more than 1000/],
  ];
  for (const [pattern, why] of bad) t.throws(() => expandDnsPattern(pattern), { code: 'CONFIGURATION', message: why }, pattern);
});

t.test('DNS names resolve with retries, bounded in time', async (t) => {
  let now = 0;
  const sleeps: number[] = [];
  const calls = new Map<string, number>();
  const resolve = async (host: string): Promise<readonly string[]> => {
    const n = (calls.get(host) ?? 0) + 1;
    calls.set(host, n);
    if (host.startsWith('kv-2') && n < 3) throw Object.assign(new Error('not yet'), { code: 'ENOTFOUND' });
    if (host.startsWith('kv-1') && n < 2) return [];
    return [`10.0.0.${host[3]}`];
  };
  const clock = { now: () => now, sleep: async (ms: number) => void (sleeps.push(ms), (now += ms)) };
  const c = await loadKvConfig(['--dns', 'kv-{0..2}.kv.default.svc', '--raft-port', '7100'], { env: { RAFTCHART_SECRET: SECRET }, hostname: 'kv-1.kv.default.svc.cluster.local', resolve, ...clock });
  t.equal(c.id, 'kv-1', 'the id is the host name first label');
  t.same(c.peers, ['kv-0', 'kv-1', 'kv-2'].map((id) => ({ id, raft: `${id}.kv.default.svc:7100`, http: `${id}.kv.default.svc:8000` })), 'peers are dialed by name');
  t.equal(c.raftListen, '0.0.0.0:7100');
  t.equal(c.httpListen, '0.0.0.0:8000');
  t.same(c.resolved, { 'kv-0.kv.default.svc': ['10.0.0.0'], 'kv-1.kv.default.svc': ['10.0.0.1'], 'kv-2.kv.default.svc': ['10.0.0.2'] });
  t.same(calls.get('kv-0.kv.default.svc'), 1, 'a resolved name is not asked again');
  t.same(sleeps, [250, 500], 'backoff between rounds');

  now = 0;
  sleeps.length = 0;
  const never = async (): Promise<readonly string[]> => {
    throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
  };
  await t.rejects(resolveAll(['a.svc', 'b.svc'], 3000, { resolve: never, ...clock }), { code: 'CONFIGURATION', message: /a\.svc \(ENOTFOUND\), b\.svc \(ENOTFOUND\) did not resolve within 3000 ms/ });
  t.ok(sleeps.length >= 2 && sleeps.length <= 6, `bounded retries (${sleeps.length})`);
  t.ok(sleeps.reduce((a, b) => a + b, 0) <= 3000, 'never waits past the deadline');
  const real = await resolveAll(['localhost'], 5000);
  t.ok((real['localhost']?.length ?? 0) > 0, 'the default resolver uses node:dns');

  await t.rejects(loadKvConfig(['--dns', 'kv-{0..2}.svc', '--id', 'kv-7'], { env: { RAFTCHART_SECRET: SECRET }, resolve: async () => ['10.0.0.1'] }), { message: /kv-7 is not one of the DNS peers/ });
  await t.rejects(loadKvConfig(['--dns', 'kv-{0..2}.svc', '--peers', PEERS], base), { message: /cannot be combined/ });
  await t.rejects(loadKvConfig(['--dns', 'kv-0.svc', '--raft-port', '0'], base), { message: /--raft-port: must be a port/ });
});

t.test('bad input is a ConfigurationError that names the flag', async (t) => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['--bogus'], {}, /^--bogus: unknown flag/],
    [['--id'], {}, /^--id: needs a value/],
    [['--id', '--peers', PEERS], {}, /^--id: needs a value/],
    [['n1'], {}, /unexpected argument/],
    [['--peers', PEERS], {}, /^--id: is required/],
    [['--id', 'n9', '--peers', PEERS], {}, /n9 is not in the peer list/],
    [['--id', 'n1', '--peers', 'n1=127.0.0.1:7001,n1=127.0.0.1:7002'], {}, /names n1 twice/],
    [['--id', 'n1', '--peers', 'n1:7001'], {}, /must be id=host:port/],
    [['--id', 'n1', '--peers', 'n1=127.0.0.1:99999'], {}, /must be host:port/],
    [['--id', 'n1', '--peers', ','], {}, /is empty/],
    [['--id', 'n1', '--peers', PEERS, '--http-peers', 'n4=127.0.0.1:1'], {}, /n4, which is not a peer/],
    [['--id', 'n1', '--peers', PEERS, '--http-peers', 'n1'], {}, /must be id=host:port/],
    [['--id', 'n1', '--peers', PEERS, '--http', 'nowhere'], {}, /^--http: must be host:port/],
    [['--id', 'n1'], {}, /^--raft: is required/],
    [['--id', 'n1', '--raft', 'x'], {}, /^--raft: must be host:port/],
    [['--id', 'n1', '--peers', PEERS], { RAFTCHART_SECRET: '' }, /^--secret: must be at least 16 bytes/],
    [['--id', 'n1', '--peers', PEERS, '--secret', 'short'], {}, /^--secret: must be at least 16 bytes/],
    [['--id', 'n1', '--peers', PEERS, '--insecure', '--secret', SECRET], {}, /cannot be combined with a secret/],
    [['--id', 'n1', '--peers', PEERS, '--insecure=maybe'], {}, /must be true or false/],
    [['--id', 'n1', '--peers', PEERS], { RAFTCHART_INSECURE: 'maybe' }, /^RAFTCHART_INSECURE: must be true or false/],
    [['--id', 'n1', '--peers', PEERS, '--bootstrap', 'always'], {}, /must be auto or never/],
    [['--id', 'n1', '--peers', PEERS, '--max-value-bytes', '-1'], {}, /must be an integer/],
    [['--id', 'n1', '--peers', PEERS, '--max-value-bytes', '0'], {}, /must be in \[1, 67108864\]/],
    [['--id', 'n1', '--peers', PEERS, '--request-timeout-ms', '10'], {}, /at least 100/],
    [['--id', 'n1', '--peers', PEERS], { RAFTCHART_REQUEST_TIMEOUT_MS: 'soon' }, /^RAFTCHART_REQUEST_TIMEOUT_MS: must be an integer/],
    [['--id', 'x'.repeat(257), '--raft', '127.0.0.1:1'], {}, /at most 256/],
  ];
  for (const [argv, env, message] of cases) {
    const withSecret = 'RAFTCHART_SECRET' in env || argv.includes('--secret') || argv.includes('--insecure') ? env : { RAFTCHART_SECRET: SECRET, ...env };
    await t.rejects(loadKvConfig(argv, { env: withSecret }), { code: 'CONFIGURATION', message }, argv.join(' ').slice(0, 60) || JSON.stringify(env));
  }
  await t.rejects(loadKvConfig(['--id', 'n1', '--peers', PEERS], { env: {} }), { message: /^--secret: is required/ }, 'a secret is required');
  await t.rejects(loadKvConfig(['--config', 'missing.json'], { env: {}, readFile: async () => Promise.reject(new Error('ENOENT: no such file')) }), { message: /^--config: cannot read missing.json: ENOENT/ });
  t.throws(() => parseKvFlags(['--raft-port', 'x']), ConfigurationError);
});

t.test('the cluster file is checked field by field', async (t) => {
  const bad: [string, RegExp][] = [
    ['{', /^c.json: is not valid JSON/],
    ['3', /must hold a JSON list of peers or an object/],
    ['null', /must hold a JSON list of peers or an object/],
    ['{"nodes":[]}', /^c.json: nodes: unknown setting/],
    ['{"config":"x"}', /^c.json: config: unknown setting/],
    ['{"requestTimeoutMs":"10"}', /requestTimeoutMs: must be a non-negative integer/],
    ['{"insecure":"yes"}', /insecure: must be true or false/],
    ['{"id":7}', /id: must be a string/],
    ['{"peers":7}', /peers: must be a list or a string/],
    ['[{"id":"a"}]', /c.json\[0\]: must be/],
    ['[{"id":"a","raft":"h:1","http":3}]', /c.json\[0\]: must be/],
    ['[7]', /c.json\[0\]: must be/],
    ['[{"id":"a","raft":"nohost"}]', /c.json\[0\].raft: must be host:port/],
    ['{"peers":[{"id":"a","raft":"h:1","http":"bad"}]}', /c.json: peers\[0\].http: must be host:port/],
  ];
  for (const [text, message] of bad) t.throws(() => parseKvFile(text, 'c.json'), { code: 'CONFIGURATION', message }, text);
  t.same(parseKvFile('{"peers":"a=h:1"}'), { peers: 'a=h:1' }, 'peers may be the flag string');
  t.same(parsePeerList('a=h:1'), [{ id: 'a', raft: 'h:1', http: 'h:1001' }]);
  t.same(splitHostPort('[::1]:80'), { host: '[::1]', port: 80 });
  t.equal(splitHostPort('h:65536'), null);
  t.equal(splitHostPort('h'), null);
});
