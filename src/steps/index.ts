// The step registry: every step kind a pipeline may use. A new step module is added here; the
// pipeline schema, validation and `ckpt --help` pick it up (then run `npm run schema`).
import type { StepDefinition } from '../runner/types.js';
import assert from './assert.js';
import check from './check.js';
import dump from './dump.js';
import freeze from './freeze.js';
import restore from './restore.js';
import show from './show.js';
import exec from './exec.js';
import sleep from './sleep.js';
import spawn from './spawn.js';
import waitFor from './wait-for.js';

export const builtinSteps: readonly StepDefinition[] = [exec, spawn, waitFor, sleep, assert, freeze, dump, restore, show, check];
