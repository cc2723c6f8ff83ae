// Child process for unix-socket.test.ts: listenUnix(argv[2]), accept one
// connection, say so on stdout, exit. Run under strace, which delays listen().
import { acceptUnix, closeSocket, listenUnix } from '../../../src/sys/unix-socket.ts';

const fd = listenUnix(process.argv[2]!);
process.stdout.write('listening\n');
const c = acceptUnix(fd);
process.stdout.write('accepted\n');
closeSocket(c);
closeSocket(fd);
