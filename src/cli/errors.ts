// Layer: cli. The two ways a command fails on purpose. main.ts turns them into
// one line on stderr and an exit code; anything else is an internal error.

/** The command line itself is wrong (exit 2). `command` names the help to point at. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

/** The request was understood but cannot be done here (exit 1, or `exitCode`). */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}
