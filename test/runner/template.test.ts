import t from 'tap';
import { interpolate, interpolateTree, scan, type Reference } from '../../src/runner/template.js';

const values: Record<string, unknown> = { name: 'web', pid: 4242, 'env.HOME': '/root', 'steps.a.out': { k: 1 } };
const lookup = (ref: Reference): unknown =>
  values[ref.type === 'var' ? ref.name : ref.type === 'env' ? `env.${ref.name}` : `steps.${ref.id}.${ref.path.join('.')}`];

t.test('references of the three kinds', async (t) => {
  t.same(
    scan('${name} ${env.HOME} ${steps.build.pid} ${steps.s.info.port}').occurrences.map((o) => o.ref),
    [
      { type: 'var', name: 'name' },
      { type: 'env', name: 'HOME' },
      { type: 'step', id: 'build', path: ['pid'] },
      { type: 'step', id: 's', path: ['info', 'port'] },
    ],
  );
});

t.test('malformed references are faults with their offsets', async (t) => {
  t.same(scan('a ${ x } b').faults, [
    { text: '${ x }', offset: 2, message: "invalid reference '${ x }'; write ${name}, ${env.NAME} or ${steps.ID.OUTPUT}" },
  ]);
  t.same(scan('x ${steps.a').faults.map((f) => f.offset), [2]);
  t.same(scan('${steps}').faults.length, 1, 'steps needs an id and an output');
});

t.test('substitution keeps the type of a whole-string reference', async (t) => {
  t.equal(interpolate('${pid}', lookup), 4242);
  t.equal(interpolate('pid ${pid} of ${name}', lookup), 'pid 4242 of web');
  t.equal(interpolate('${steps.a.out}!', lookup), '{"k":1}!');
  t.equal(interpolate('$${name} is ${name}', lookup), '${name} is web', '$${ is a literal ${');
});

t.test('interpolateTree leaves the listed keys alone', async (t) => {
  t.same(interpolateTree({ run: 'kill ${pid}', that: '${pid} == 1', list: ['${name}'] }, lookup, ['that']), {
    run: 'kill 4242',
    that: '${pid} == 1',
    list: ['web'],
  });
});
