/**
 * Reading a password for the CLI without putting it on the command line (where `ps` and the shell
 * history would keep it): all of stdin when it is a pipe or a file (`--password-stdin`), or typed at
 * a terminal with echo off. I/O shell (process.stdin).
 */
import { FleetError } from '@fleet/protocol/errors';

/** Everything on stdin, without one trailing newline (as `echo` and `printf '%s\n'` add). */
export async function readStdin(stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** A line typed at the terminal with echo off; Ctrl-C aborts. */
export function promptHidden(question: string, stdin: NodeJS.ReadStream = process.stdin, out: NodeJS.WriteStream = process.stderr): Promise<string> {
  return new Promise((resolve, reject) => {
    out.write(question);
    let typed = '';
    const done = (err?: Error): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      out.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (data: Buffer): void => {
      for (const ch of data.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new FleetError('cancelled', 'cancelled; nothing was changed'));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}

/**
 * A new password: from stdin when asked to or when stdin is not a terminal, else typed twice at the
 * terminal (a typo would otherwise lock the user out).
 */
export async function readNewPassword(fromStdin: boolean, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (fromStdin || !stdin.isTTY) return readStdin(stdin);
  const first = await promptHidden('new password: ', stdin);
  const again = await promptHidden('again: ', stdin);
  if (first !== again) throw new FleetError('password-mismatch', 'the two passwords differ; nothing was changed');
  return first;
}
