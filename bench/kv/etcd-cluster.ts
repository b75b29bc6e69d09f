/**
 * Three etcd members as child processes on 127.0.0.1, for `npm run bench:kv`.
 *
 * @module
 */
import { ProcessCluster, freePorts, httpJson, type Member } from './clusters.js';

/** Three etcd members (`etcd` on the PATH), default durability, peer and client URLs on 127.0.0.1. */
export class EtcdCluster extends ProcessCluster {
  readonly name = 'etcd';
  readonly #ids = new Map<string, string>();

  constructor(
    readonly ports: readonly { id: string; client: number; peer: number }[],
    readonly dataDir: string,
  ) {
    super(ports.map((p) => ({ id: p.id, url: `http://127.0.0.1:${p.client}` })));
  }

  static async onFreePorts(dataDir: string): Promise<EtcdCluster> {
    const ports = await freePorts(6);
    return new EtcdCluster(['e1', 'e2', 'e3'].map((id, i) => ({ id, client: ports[2 * i] as number, peer: ports[2 * i + 1] as number })), dataDir);
  }

  protected command(id: string): { cmd: string; args: string[] } {
    const p = this.ports.find((x) => x.id === id) as { id: string; client: number; peer: number };
    const initial = this.ports.map((x) => `${x.id}=http://127.0.0.1:${x.peer}`).join(',');
    return {
      cmd: 'etcd',
      args: [
        '--name', id,
        '--data-dir', `${this.dataDir}/${id}`,
        '--listen-client-urls', `http://127.0.0.1:${p.client}`,
        '--advertise-client-urls', `http://127.0.0.1:${p.client}`,
        '--listen-peer-urls', `http://127.0.0.1:${p.peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${p.peer}`,
        '--initial-cluster', initial,
        '--initial-cluster-token', 'raftchart-bench',
        '--initial-cluster-state', 'new',
        '--logger', 'zap',
        '--log-level', 'warn',
      ],
    };
  }

  protected ready(id: string, _log: string): boolean {
    // etcd logs little at warn level: readiness is polled in start(); the process being up is enough here.
    return this.procs.get(id)?.child != null;
  }

  protected async leaderOf(member: Member): Promise<string | null> {
    const r = await httpJson(`${member.url}/v3/maintenance/status`, { method: 'POST', body: '{}', timeoutMs: 1000 });
    if (r.status !== 200) return null;
    const s = JSON.parse(r.body.toString('utf8')) as { header?: { member_id?: string }; leader?: string };
    if (s.header?.member_id !== undefined) this.#ids.set(s.header.member_id, member.id);
    return s.leader === undefined || s.leader === '0' ? null : (this.#ids.get(s.leader) ?? (s.leader === s.header?.member_id ? member.id : null));
  }
}
