// The runner's public API, for the CLI and for programs that run pipelines themselves.
export { COMMANDS, GLOBAL_FLAGS, commandHelp, commandParams, flagsHelp, parseArgs } from './commands.js';
export type { CommandDefinition, FlagSpec, FlagType, ParsedArgs, PositionalSpec } from './commands.js';
export { durationSchema, formatDuration, parseDuration } from './duration.js';
export {
  CkptError,
  InterruptedError,
  PipelineError,
  StepError,
  StepTimeoutError,
  UsageError,
  describeError,
  formatProblem,
} from './errors.js';
export type { Problem } from './errors.js';
export { describeFailure, runPipeline, runPipelineFile } from './run.js';
export { composePipelineSchema } from './schema.js';
export type * from './types.js';
