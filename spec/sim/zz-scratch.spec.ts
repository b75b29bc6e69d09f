import t from 'tap';
import { SimCluster } from './harness/cluster.js';
import { nodeInternals } from '../../actors/node.actor.js';

t.test('scratch', async (t) => {
  const sim = new SimCluster({ seed: 1, size: 3 });
  await sim.start();
  sim.network.resetStats();
  const t0 = sim.clock.now();
  const l = await sim.waitLeader();
  console.log('leader', l.id, 'at', sim.clock.now() - t0, nodeInternals(l).state());
  await sim.run(300);
  console.log(sim.network.stats());
  sim.network.resetStats();
  for (let i = 0; i < 11; i++) {
    const a = await sim.commit('v' + i);
    if (i < 2) console.log(a);
  }
  console.log('after 11', sim.network.stats());
  sim.network.resetStats();
  await sim.run(1000);
  console.log('idle 1s', sim.network.stats());
  for (const id of sim.ids) console.log(id, nodeInternals(sim.nodes.get(id)!).state(), sim.applied.get(id)!.length);
  await sim.stop();
  t.pass();
});
