'use strict';
/**
 * Test support: a scriptable stand-in for the call server (protocol checks
 * without the real one), a TCP proxy that can cut a live connection, and
 * emulator defaults.
 */
const net = require('node:net');
const { WebSocketServer } = require('ws');
const { Emulator } = require('../emulator');

const OPERATOR = '+73430001212';
const TIME_SCALE = 0.02;

// Fast timings for one call, sent as customData (VoxEngine caps it at 200 bytes).
// The server's silence phrases in these tests: not the scenario's own words.
const REPROMPT = 'Алло, вы на связи? Спросите, пожалуйста, что вас интересует.';
const GOODBYE = 'Не слышу вас. Всего доброго, до свидания.';

const FAST = { silenceMs: 600, bargeInHoldMs: 120, bargeInVadMs: 60, connectTimeoutMs: 3000, transferRingMs: 800 };

/** A port nothing listens on. */
async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

function makeEmulator({ serverUrl, token, operatorPhone = OPERATOR, storage = {}, pstn, silero, sileroError } = {}) {
  const st = { 'metrotest:serverUrl': serverUrl, 'metrotest:token': token, ...storage };
  if (operatorPhone) st['metrotest:operatorPhone'] = operatorPhone;
  for (const k of Object.keys(st)) if (st[k] === undefined) delete st[k];
  return new Emulator({
    storage: st,
    timeScale: TIME_SCALE,
    pstn: pstn || { [OPERATOR]: { answerAfterMs: 30 } },
    silero,
    sileroError,
  });
}

/**
 * The call server as PROTOCOL.md describes it, scripted by the test:
 * greets on setup, answers prompts with `answer(frame)` pieces, answers the
 * first `silence` with its reprompt and the next with its goodbye and `end`
 * (as the real server does with the panel's settings), records frames.
 */
class FakeServer {
  constructor({
    token = 'fake-token', greeting = ['Здравствуйте! Вы позвонили в компанию Метротест.', 'Чем могу помочь?'], answer,
    pieceGapMs = 5, reprompt = REPROMPT, goodbye = GOODBYE,
  } = {}) {
    this.token = token;
    this.greeting = greeting;
    this.answer = answer || (() => ['Мы работаем с понедельника по пятницу с восьми тридцати до семнадцати тридцати.', 'Звоните, будем рады помочь.']);
    this.pieceGapMs = pieceGapMs;
    this.frames = []; // every frame received, in order
    this.conns = new Set();
    this.onFrame = null; // (frame, conn) => handled?; runs before the defaults
    this.answers = 0;
    this.reprompt = reprompt;
    this.goodbye = goodbye;
    this.silences = 0; // since the caller last spoke or pressed a key
  }

  async start() {
    this.wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false),
    });
    await new Promise((r) => this.wss.once('listening', r));
    this.url = `ws://127.0.0.1:${this.wss.address().port}/voice/ws`;
    this.wss.on('connection', (conn, req) => {
      const token = new URL(req.url, 'http://x').searchParams.get('token');
      if (token !== this.token) {
        conn.close(1008, 'bad token');
        return;
      }
      this.conns.add(conn);
      conn.on('close', () => this.conns.delete(conn));
      conn.on('message', (data) => {
        const frame = JSON.parse(data.toString());
        this.frames.push(frame);
        if (this.onFrame && this.onFrame(frame, conn)) return;
        if (frame.type === 'setup') this.speak(conn, 'greeting', this.greeting);
        else if (frame.type === 'prompt' && frame.last) {
          this.silences = 0;
          this.answers += 1;
          this.speak(conn, `a${this.answers}`, this.answer(frame));
        } else if (frame.type === 'dtmf') this.silences = 0;
        else if (frame.type === 'silence') {
          this.silences += 1;
          if (this.silences === 1) this.speak(conn, `r${this.answers}`, [this.reprompt]);
          else this.send(conn, { type: 'end', reason: 'silence', text: this.goodbye });
        }
      });
    });
    return this;
  }

  /** Streams pieces as `text` frames, a little apart, the last one marked. */
  speak(conn, answerId, pieces) {
    pieces.forEach((text, seq) => {
      setTimeout(() => {
        if (conn.readyState === conn.OPEN) conn.send(JSON.stringify({ type: 'text', answerId, seq, text, last: seq === pieces.length - 1 }));
      }, this.pieceGapMs * (seq + 1));
    });
  }

  send(conn, frame) {
    conn.send(JSON.stringify(frame));
  }

  of(type) {
    return this.frames.filter((f) => f.type === type);
  }

  async stop() {
    for (const c of this.conns) c.terminate();
    await new Promise((r) => this.wss.close(r));
  }
}

/** A TCP relay to `target` (host:port) whose live connections a test can cut. */
class CuttableProxy {
  constructor(targetUrl) {
    const u = new URL(targetUrl);
    this.targetHost = u.hostname;
    this.targetPort = Number(u.port);
    this.path = u.pathname;
    this.pairs = new Set();
  }

  async start() {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      const pair = { client, upstream };
      this.pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const done = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', done);
      upstream.on('error', done);
      client.on('close', done);
      upstream.on('close', done);
    });
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `ws://127.0.0.1:${this.server.address().port}${this.path}`;
    return this;
  }

  /** Drops every connection at once, as a crashed server or a broken network would. */
  cut() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  async stop() {
    this.cut();
    await new Promise((r) => this.server.close(r));
  }
}

/** Fails the test with the emulator's log if the scenario threw or misused the API. */
function assertClean(assert, emu) {
  const problems = emu.problems();
  assert.deepStrictEqual(problems.map((p) => `${p.type}: ${p.where || ''} ${p.message}`), [], 'scenario errors or API misuse');
}

/** Polls `fn` until it returns a truthy value (for state another process updates). */
async function eventually(fn, { timeout = 5000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits until the session ended (terminate), then gives late events a moment. */
async function ended(emu, timeout = 10000) {
  await emu.waitFor('terminate', () => true, { timeout });
  await new Promise((r) => setTimeout(r, 50));
}

/** Three long sentences: an answer that is still playing when the caller speaks over it. */
const LONG = [
  'Испытательные машины серии РЭМ выпускаются с нагрузкой от одного до трёхсот килоньютонов.',
  'Каждая машина проходит поверку и поставляется с программным обеспечением для протоколов испытаний.',
  'Доставка по России занимает от трёх до десяти рабочих дней в зависимости от региона.',
];

/** Runs `body({server, emu})` with a fake server and an emulated call, both torn down afterwards. */
async function withCall(serverOpts, emuOpts, body) {
  const server = await new FakeServer(serverOpts).start();
  const emu = makeEmulator({ serverUrl: server.url, token: server.token, ...emuOpts });
  try {
    await body({ server, emu });
  } finally {
    emu.dispose();
    await server.stop();
  }
}

module.exports = {
  OPERATOR, FAST, REPROMPT, GOODBYE, TIME_SCALE, closedPort, makeEmulator, FakeServer, CuttableProxy, assertClean, ended, eventually,
  LONG, withCall,
};
