// One import for tests: import { startFixture, tmpdir, ... } from '../helpers/index.js'.
export { fixture, fixturesBinDir, fixturesDir, packageRoot } from './paths.js';
export { startFixture, type FixtureProcess, type StartOptions } from './fixtures.js';
export { killAndReap, makeSubreaper, reapPid, trackChildProcess, type ExitStatus } from './reap.js';
export { procSnapshot, type ProcSnapshot } from './snapshot.js';
export { tmpdir, type Teardown } from './tmpdir.js';
export { freePort } from './net.js';
