// Broken pipelines: every problem is reported at its FILE:LINE:COL, all of them at once.
// Each fixture in pipelines/invalid/ lists what it expects in `# expect: LINE:COL: message`
// comments at its end.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { PipelineError, formatProblem, runPipeline, runPipelineFile } from '../../src/runner/index.js';
import { fixtures } from './helpers.js';

const invalid = join(fixtures, 'invalid');
// Fixtures must not depend on the environment of whoever runs the tests.
const env = { HOME: '/root' };

async function problemsOf(run: Promise<unknown>): Promise<string[]> {
  try {
    await run;
  } catch (err) {
    if (err instanceof PipelineError) return err.problems.map(formatProblem);
    throw err;
  }
  throw new Error('the pipeline was accepted');
}

t.test('each broken fixture reports exactly its expected problems', async (t) => {
  const files = (await readdir(invalid)).filter((name) => name.endsWith('.yaml')).sort();
  t.ok(files.length >= 12, `${files.length} broken fixtures`);
  for (const name of files) {
    const file = join(invalid, name);
    const expected = (await readFile(file, 'utf8'))
      .split('\n')
      .filter((line) => line.startsWith('# expect: '))
      .map((line) => `${file}:${line.slice('# expect: '.length)}`);
    t.ok(expected.length > 0, `${name} states its expectations`);
    t.same(await problemsOf(runPipelineFile(file, { output: 'silent', env })), expected, name);
  }
});

t.test('nothing runs when the pipeline is invalid', async (t) => {
  let events = 0;
  await problemsOf(runPipelineFile(join(invalid, 'unknown-kind.yaml'), { output: 'silent', env, onEvent: () => events++ }));
  t.equal(events, 0);
});

t.test('a missing file is a problem of that file', async (t) => {
  const file = join(invalid, 'no-such-file.yaml');
  t.same(await problemsOf(runPipelineFile(file, { output: 'silent', env })), [`${file}: cannot read pipeline file: no such file`]);
});

t.test('--set names are checked', async (t) => {
  const file = join(fixtures, 'flow.yaml');
  t.same(await problemsOf(runPipelineFile(file, { output: 'silent', env: { CKPT_TEST_VALUE: 'v' }, set: { who: 'x', 'bad name': 'y' } })), [
    `--set: invalid variable name 'bad name'; names start with a letter or '_' and contain only letters, digits, '_' and '-'`,
  ]);
});

t.test('documents built in code are located by path', async (t) => {
  const doc = { version: 1, name: 'built', steps: [{ sleep: {} }, { exec: { run: 'x', colour: 'red' } }] };
  t.same(await problemsOf(runPipeline(doc, { output: 'silent', env })), [
    "steps[0].sleep: sleep: missing required option 'seconds'",
    "steps[1].exec.colour: exec: unknown option 'colour' (allowed: run, cwd, env, expect-exit, rollback)",
  ]);
});
