#!/usr/bin/env node
/**
 * The `raftchart` command line: `raftchart kv` runs one node of the replicated
 * key-value service, `raftchart demo` three of them in this process on
 * 127.0.0.1, `raftchart status <url>` prints a node's status. `--help` on
 * every command. The commands live in `examples/kv/cli.ts`.
 *
 * @module
 */
import { runCli } from '../examples/kv/cli.js';

process.exitCode = await runCli(process.argv.slice(2));
// Everything is closed by now; a stray timer in a dependency must not keep the process alive.
setTimeout(() => process.exit(), 3000).unref();
