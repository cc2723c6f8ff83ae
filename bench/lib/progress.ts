// bench/lib: one line per job on stderr, so a person can follow a long run
// and stdout stays free (may import node:* only).

export class Progress {
  private done = 0;
  private readonly t0 = Date.now();

  constructor(private readonly total: number) {}

  private stamp(): string {
    const s = Math.round((Date.now() - this.t0) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  }

  /** A status line that is not a job (mounting, preparing data...). */
  note(msg: string): void {
    process.stderr.write(`${this.stamp()}          ${msg}\n`);
  }

  /** One finished job (or group of rows measured by one job). */
  job(system: string, row: string, result: string, count = 1): void {
    this.done += count;
    const n = String(this.done).padStart(String(this.total).length);
    process.stderr.write(`${this.stamp()} [${n}/${this.total}] ${system.padEnd(11)} ${row.padEnd(40)} ${result}\n`);
  }
}
