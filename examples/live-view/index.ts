/**
 * The live cluster view: one page showing every node's role, term, indexes,
 * replica progress and the role machine's diagram with the active states
 * highlighted, updated live. `raftchart demo` serves it; see the "Live cluster
 * view" guide.
 *
 * @module
 */
export {
  startLiveView,
  activePaths,
  describeEvent,
  type LiveView,
  type LiveViewOptions,
  type LiveViewNode,
  type ClusterView,
  type LiveNodeView,
  type LiveReplicaView,
  type LiveEventView,
} from './server.js';
export { livePage, type LivePage } from './page.js';
