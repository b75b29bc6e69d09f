/**
 * The replicated key-value service built on raftchart's public API: the
 * state machine, its configuration, the HTTP node and the command line.
 *
 * @module
 */
export { KvStore, encodeCommand, decodeCommand, type KvCommand, type KvResult } from './store.js';
export {
  loadKvConfig,
  parseKvFlags,
  parseKvEnv,
  parseKvFile,
  parsePeerList,
  expandDnsPattern,
  resolveAll,
  splitHostPort,
  KV_FLAGS,
  type KvConfig,
  type KvConfigSources,
  type KvPeer,
  type HostResolver,
} from './config.js';
export { startKvNode, type KvNode, type KvNodeOptions, type KvEvent } from './server.js';
export { runCli, formatStatus, type CliIo } from './cli.js';
