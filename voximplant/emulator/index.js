'use strict';
/**
 * A VoxEngine emulator for testing call scenarios in Node.
 *
 * One Emulator is one VoxEngine session: the scenario file is loaded unmodified
 * into a fresh `vm` context holding the VoxEngine globals, an incoming call is
 * offered, and the test plays the caller (speech with interim and final
 * results, coughs, keys, hang-up), the operator's phone (callPSTN legs that
 * answer, ring out or fail) and the clock of the TTS (playback lasts in
 * proportion to the text, scaled down by `timeScale`). The scenario's
 * WebSocket is a real `ws` client.
 *
 * Everything observable is appended to `emu.events` as {seq, at, type, ...};
 * tests wait on it (`waitFor`) or react to it (`on('event')`).
 */
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const C = require('./constants');
const { Call, ASR, Player, SileroVAD, WebSocket } = require('./objects');

const DEFAULT_SCENARIO = path.join(__dirname, '..', 'scenario_barge_in.js');

class Emulator extends EventEmitter {
  /**
   * @param {object} o
   * @param {string} [o.scenario] scenario file
   * @param {object} [o.storage] ApplicationStorage contents, key -> value
   * @param {object} [o.pstn] number -> {answerAfterMs} | {failAfterMs, code, reason} | {ring: true}
   * @param {number} [o.timeScale] real ms per virtual ms for TTS and caller speech (0.05: twenty times faster)
   * @param {number} [o.msPerChar] virtual TTS speed
   * @param {boolean} [o.silero] whether the platform offers Modules.Silero (default true; false: an
   *   account or VoxEngine version without it, where Modules.Silero is undefined)
   * @param {string} [o.sileroError] Silero.createVAD rejects with this reason (the connector failed)
   */
  constructor(o = {}) {
    super();
    this.setMaxListeners(100);
    this.scenarioPath = o.scenario || DEFAULT_SCENARIO;
    this.storage = new Map(Object.entries(o.storage || {}));
    this.pstn = o.pstn || {};
    this.timeScale = o.timeScale === undefined ? 0.05 : o.timeScale;
    this.msPerChar = o.msPerChar === undefined ? 65 : o.msPerChar;
    this.silero = o.silero !== false;
    this.sileroError = o.sileroError || null;
    this.events = [];
    this.sockets = new Set();
    this.calls = [];
    this.terminated = false;
    this.disposed = false;
    this._seq = 0;
    this._ids = 0;
    this._t0 = Date.now();
    this._timers = new Set(); // the emulator's own (TTS, caller)
    this._scenarioTimers = new Map(); // the scenario's setTimeout/setInterval
    this._appListeners = new Map();
    this._modules = new Set();
  }

  // -- recording -------------------------------------------------------------

  record(type, data = {}) {
    const ev = { seq: this._seq++, at: Date.now() - this._t0, type, ...data };
    this.events.push(ev);
    this.emit('event', ev);
    return ev;
  }

  violation(message) {
    this.record('violation', { message });
  }

  guard(fn, where) {
    try {
      return fn();
    } catch (err) {
      this.record('scenario.error', { where, message: String(err && err.stack ? err.stack : err) });
      return undefined;
    }
  }

  /** Events of a type (and predicate), in order. */
  filter(type, pred = () => true) {
    return this.events.filter((e) => e.type === type && pred(e));
  }

  find(type, pred = () => true) {
    return this.events.find((e) => e.type === type && pred(e));
  }

  /** Frames the scenario sent over its WebSocket (parsed JSON), optionally of one protocol type. */
  sent(frameType) {
    return this.filter('ws.sent').map((e) => e.frame).filter((f) => f && (!frameType || f.type === frameType));
  }

  received(frameType) {
    return this.filter('ws.received').map((e) => e.frame).filter((f) => f && (!frameType || f.type === frameType));
  }

  /** Texts the caller heard to the end, in order. */
  spoken() {
    return this.filter('tts.finished', (e) => e.heard).map((e) => e.text);
  }

  /** Resolves with the first event (from `fromSeq` on) that matches; rejects after `timeout` ms. */
  waitFor(type, pred = () => true, { timeout = 10000, fromSeq = 0 } = {}) {
    const found = this.events.find((e) => e.seq >= fromSeq && e.type === type && pred(e));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onEvent = (e) => {
        if (e.seq >= fromSeq && e.type === type && pred(e)) {
          clearTimeout(timer);
          this.off('event', onEvent);
          resolve(e);
        }
      };
      const timer = setTimeout(() => {
        this.off('event', onEvent);
        const tail = this.events.slice(-25).map((e) => `${e.at}ms ${e.type} ${summary(e)}`).join('\n');
        reject(new Error(`timed out waiting for ${type}; last events:\n${tail}`));
      }, timeout);
      this.on('event', onEvent);
    });
  }

  /** Calls fn once, synchronously, on the first matching event: to act at an exact moment. */
  when(type, pred, fn) {
    const onEvent = (e) => {
      if (e.type === type && pred(e)) {
        this.off('event', onEvent);
        fn(e);
      }
    };
    this.on('event', onEvent);
  }

  // -- time ----------------------------------------------------------------------

  ms(virtualMs) {
    return Math.max(1, Math.round(virtualMs * this.timeScale));
  }

  ttsDurationMs(text) {
    return this.ms(String(text).length * this.msPerChar);
  }

  ttsLatencyMs() {
    return this.ms(150);
  }

  virtualSeconds(text) {
    return (String(text).length * this.msPerChar) / 1000;
  }

  later(ms, fn) {
    const t = setTimeout(() => {
      this._timers.delete(t);
      if (!this.disposed) fn();
    }, ms);
    this._timers.add(t);
    return t;
  }

  sleep(ms) {
    return new Promise((resolve) => this.later(ms, resolve));
  }

  // Scenario callbacks run one at a time, after the current one, unless the session is over.
  dispatch(fn) {
    setImmediate(() => {
      if (!this.terminated && !this.disposed) fn();
    });
  }

  // Unique across sessions, like Voximplant's ids: the server's call log keys on them.
  nextId(prefix) {
    this._ids += 1;
    if (!this._idBase) this._idBase = crypto.randomBytes(6).toString('hex').toUpperCase();
    return `${prefix}${this._idBase}.${this._ids}`;
  }

  // -- media routing ---------------------------------------------------------------

  // `source` now reaches the person on `call`; one incoming stream per call, the new one replaces the old.
  hear(call, source) {
    const prev = call.inbound;
    if (prev instanceof Player && prev !== source && prev._state === 'playing' && prev._heard()) {
      this.violation(`two players on call ${call.id()}: "${source._text || source}" cut "${prev._text}"`);
    }
    call.inbound = source;
  }

  onCallEnded() {}

  // -- the sandbox -------------------------------------------------------------------

  _sandbox() {
    const emu = this;
    const need = (mod, what) => {
      if (!emu._modules.has(mod)) throw new ReferenceError(`${what} needs require(Modules.${mod === 'asr' ? 'ASR' : mod})`);
    };

    const VoxEngine = {
      addEventListener(event, callback) {
        if (!Object.values(C.AppEvents).includes(event)) throw new TypeError(`VoxEngine.addEventListener: unknown event ${event}`);
        if (typeof callback !== 'function') throw new TypeError('VoxEngine.addEventListener: handler is not a function');
        if (!emu._appListeners.has(event)) emu._appListeners.set(event, []);
        emu._appListeners.get(event).push(callback);
      },
      removeEventListener(event, callback) {
        const list = emu._appListeners.get(event) || [];
        emu._appListeners.set(event, callback ? list.filter((f) => f !== callback) : []);
      },
      createASR(parameters) {
        need('asr', 'VoxEngine.createASR');
        return new ASR(emu, emu.nextId('asr'), parameters);
      },
      createTTSPlayer(text, parameters) {
        if (typeof text !== 'string') throw new TypeError('VoxEngine.createTTSPlayer: text must be a string');
        return new Player(emu, emu.nextId('player'), text, parameters || {});
      },
      createWebSocket(url, parameters) {
        return new WebSocket(emu, emu.nextId('ws'), url, parameters);
      },
      callPSTN(number, callerid) {
        return emu._dial('pstn', String(number), callerid);
      },
      callSIP(to, parameters) {
        return emu._dial('sip', String(to), parameters && typeof parameters === 'object' ? parameters.callerid : parameters);
      },
      sendMediaBetween(a, b) {
        if (!(a instanceof Call) || !(b instanceof Call)) throw new TypeError('VoxEngine.sendMediaBetween: emulated for two calls only');
        if (a.state() !== 'CONNECTED' || b.state() !== 'CONNECTED') emu.violation('sendMediaBetween with a call not connected');
        a.inbound = b;
        b.inbound = a;
        emu.record('media.bridged', { a: a.id(), b: b.id() });
      },
      stopMediaBetween(a, b) {
        if (a.inbound === b) a.inbound = null;
        if (b.inbound === a) b.inbound = null;
        emu.record('media.unbridged', { a: a.id(), b: b.id() });
      },
      customData(value) {
        if (value !== undefined) emu.sessionCustomData = String(value);
        return emu.sessionCustomData || '';
      },
      terminate() {
        emu._terminate();
      },
    };

    const ApplicationStorage = {
      get(key) {
        return Promise.resolve(emu.storage.has(key) ? { key, value: String(emu.storage.get(key)), expireAt: 0 } : null);
      },
      keys(pattern) {
        return Promise.resolve({ keys: [...emu.storage.keys()].filter((k) => !pattern || k.startsWith(pattern)) });
      },
      put(key, value) {
        emu.storage.set(key, String(value));
        return Promise.resolve({ key, value: String(value), expireAt: 0 });
      },
      remove(key) {
        const value = emu.storage.get(key);
        emu.storage.delete(key);
        return Promise.resolve({ key, value, expireAt: 0 });
      },
    };

    // `declare namespace Silero { function createVAD(parameters: VADParameters): Promise<Silero.VAD> }`
    const Silero = Object.freeze({
      VADEvents: C.SileroVADEvents,
      createVAD(parameters) {
        const vad = new SileroVAD(emu, emu.nextId('vad'), parameters);
        return new Promise((resolve, reject) => {
          emu.later(emu.ms(60), () => {
            if (emu.sileroError) {
              vad._state = 'failed';
              emu.record('vad.failed', { vad: vad._id, reason: emu.sileroError });
              reject(new Error(emu.sileroError));
            } else {
              resolve(vad);
            }
          });
        });
      },
    });
    this._vadUnits = () => emu.calls.flatMap((c) => [...c._vads]);

    const modules = {
      [C.Modules.ASR]: () => Object.assign(ctx, {
        ASREvents: C.ASREvents, ASRProfileList: C.ASRProfileList,
      }),
      [C.Modules.Silero]: () => Object.assign(ctx, { Silero }),
      [C.Modules.ApplicationStorage]: () => Object.assign(ctx, { ApplicationStorage }),
      [C.Modules.Player]: () => {},
    };

    const timer = (repeat) => (callback, ms) => {
      if (typeof callback !== 'function') throw new TypeError('setTimeout: callback is not a function');
      emu._timerIds = (emu._timerIds || 0) + 1;
      const id = emu._timerIds;
      const run = () => {
        if (!repeat) emu._scenarioTimers.delete(id);
        if (!emu.terminated && !emu.disposed) emu.guard(callback, 'timer');
      };
      const handle = repeat ? setInterval(run, Math.max(100, ms || 0)) : setTimeout(run, ms || 0);
      emu._scenarioTimers.set(id, handle);
      return id;
    };
    const clear = (id) => {
      const handle = emu._scenarioTimers.get(id);
      if (handle !== undefined) {
        clearTimeout(handle);
        clearInterval(handle);
        emu._scenarioTimers.delete(id);
      }
    };

    const ctx = {
      VoxEngine,
      AppEvents: C.AppEvents,
      CallEvents: C.CallEvents,
      PlayerEvents: C.PlayerEvents,
      WebSocketEvents: C.WebSocketEvents,
      VoiceList: C.VoiceList,
      Modules: emu.silero ? C.Modules : Object.freeze(Object.fromEntries(Object.entries(C.Modules).filter(([k]) => k !== 'Silero'))),
      Logger: { write: (message) => emu.record('log', { message: String(message) }) },
      require(mod) {
        if (!modules[mod] || (mod === C.Modules.Silero && !emu.silero)) throw new Error(`require: unknown module ${mod}`);
        emu._modules.add(mod);
        modules[mod]();
      },
      setTimeout: timer(false),
      setInterval: timer(true),
      clearTimeout: clear,
      clearInterval: clear,
      console: {
        log: (...a) => emu.record('console', { message: a.join(' ') }),
        error: (...a) => emu.record('console', { message: a.join(' ') }),
      },
    };
    return ctx;
  }

  _fireApp(event, payload) {
    this.dispatch(() => {
      for (const f of [...(this._appListeners.get(event) || [])]) this.guard(() => f(payload), event);
    });
  }

  // -- the session -------------------------------------------------------------------

  /**
   * Loads the scenario and offers it an incoming call. Returns the caller.
   * @param {object} o
   * @param {string} [o.callerid] the caller's number
   * @param {string} [o.destination] the number dialled
   * @param {string|object} [o.customData] the call's customData (an object is sent as JSON)
   */
  start(o = {}) {
    if (this.ctx) throw new Error('Emulator.start: one call per session');
    const customData = o.customData === undefined ? undefined : typeof o.customData === 'string' ? o.customData : JSON.stringify(o.customData);
    if (customData !== undefined && Buffer.byteLength(customData) > 200) {
      throw new RangeError(`customData is ${Buffer.byteLength(customData)} bytes; VoxEngine allows 200`);
    }
    this.ctx = vm.createContext(this._sandbox(), { name: 'VoxEngine' });
    const code = fs.readFileSync(this.scenarioPath, 'utf8');
    this.guard(() => vm.runInContext(code, this.ctx, { filename: this.scenarioPath }), 'scenario load');
    this._onRejection = (reason) => this.record('scenario.error', { where: 'unhandled rejection', message: String(reason && reason.stack ? reason.stack : reason) });
    process.on('unhandledRejection', this._onRejection);

    this.sessionId = String(100000 + Math.floor(Math.random() * 900000));
    this.record('session.started', { sessionId: this.sessionId });
    this._fireApp(C.AppEvents.Started, {
      accessURL: 'http://emulator.local/', accessSecureURL: 'https://emulator.local/', accountId: 1, applicationId: 1,
      logURL: 'https://emulator.local/log', sessionId: Number(this.sessionId), conference_name: '',
    });
    const callerid = o.callerid || '+79990001122';
    const destination = o.destination || '+73430000000';
    const call = new Call(this, { id: this.nextId('call-'), callerid, number: destination, incoming: true, customData: customData || '' });
    this.calls.push(call);
    this.caller = new Caller(this, call);
    this.record('call.alerting', { call: call.id(), callerid, destination });
    this._fireApp(C.AppEvents.CallAlerting, {
      call, name: C.AppEvents.CallAlerting, callerid, destination, toURI: `sip:${destination}@voximplant.test`,
      fromURI: `sip:${callerid}@pstn`, displayName: callerid, headers: {}, customData, scheme: '',
    });
    return this.caller;
  }

  _dial(kind, number, callerid) {
    const id = this.nextId('out-');
    const call = new Call(this, { id, callerid: String(callerid || ''), number, incoming: false });
    this.calls.push(call);
    this.outCall = call;
    if (kind === 'pstn' && !/^\+?\d{5,15}$/.test(number)) this.violation(`callPSTN: ${number} is not an E.164 number`);
    if (!callerid) this.violation(`${kind === 'pstn' ? 'callPSTN' : 'callSIP'} without a caller ID`);
    this.record('pstn.dial', { call: id, kind, number, callerid });
    const plan = this.pstn[number] || { failAfterMs: 10, code: 404, reason: 'Not Found' };
    this.later(this.ms(100), () => {
      if (call.state() === 'TERMINATED') return;
      call._remoteRinging();
      if (plan.answerAfterMs !== undefined) {
        this.later(plan.answerAfterMs, () => {
          if (call.state() === 'TERMINATED') return;
          this.record('pstn.answered', { call: id, number });
          call._remoteConnected();
        });
      } else if (plan.failAfterMs !== undefined) {
        this.later(plan.failAfterMs, () => {
          if (call.state() === 'TERMINATED') return;
          this.record('pstn.failed', { call: id, number, code: plan.code || 480 });
          call._remoteFailed(plan.code || 480, plan.reason || 'Temporarily Unavailable');
        });
      } // ring: rings until the scenario hangs up
    });
    return call;
  }

  /** The VAD connector reports an error (Silero.VADEvents.Error) on every open VAD. */
  vadError(reason = 'connector lost') {
    for (const vad of this._vadUnits ? this._vadUnits() : []) vad._error(reason);
  }

  /** The operator hangs up the transfer leg. */
  operatorHangup() {
    const out = this.outCall;
    if (out && out._remoteHangup()) this.record('pstn.remote_hangup', { call: out.id() });
  }

  _terminate() {
    this.record('terminate', {});
    if (this.terminated) return;
    for (const call of this.calls) {
      if (call.state() !== 'TERMINATED') {
        call._state = 'TERMINATED';
        call._drop();
        this.record('call.dropped_by_terminate', { call: call.id() });
      }
    }
    for (const f of [...(this._appListeners.get(C.AppEvents.Terminating) || [])]) this.guard(() => f({}), 'Terminating');
    this.terminated = true;
    this._stopScenarioTimers();
    for (const ws of [...this.sockets]) if (ws.readyState === 'open') ws._sock.close(1001);
  }

  _stopScenarioTimers() {
    for (const handle of this._scenarioTimers.values()) {
      clearTimeout(handle);
      clearInterval(handle);
    }
    this._scenarioTimers.clear();
  }

  /** Stops everything: timers, sockets. Safe to call twice. */
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    this._stopScenarioTimers();
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    for (const ws of [...this.sockets]) ws._kill();
    if (this._onRejection) process.off('unhandledRejection', this._onRejection);
  }

  /** Problems the emulator saw: scenario exceptions and API misuse. */
  problems() {
    return this.events.filter((e) => e.type === 'scenario.error' || e.type === 'violation');
  }
}

// ---------------------------------------------------------------------------

/** The person on the incoming call. */
class Caller {
  constructor(emu, call) {
    this.emu = emu;
    this.call = call;
  }

  _asrs() {
    return [...this.call._asrs].filter((a) => a._state === 'running');
  }

  _hear(event, extra) {
    const asrs = this._asrs();
    if (!asrs.length) this.emu.record('caller.unheard', { event, ...extra });
    for (const asr of asrs) asr._hear(event, extra);
  }

  // What the Silero VADs on the call hear: a voice starting or stopping.
  _voice(on) {
    for (const vad of this.call._vads) {
      if (on) vad._voiceStart();
      else vad._voiceEnd();
    }
  }

  /**
   * Says `text`: voice start, interim results word by word, end of speech, final result.
   * Resolves once the final result is handed to the ASR.
   */
  async say(text, { confidence = 0.92, wordMs = 300, interim = true } = {}) {
    const emu = this.emu;
    if (this.call.state() !== 'CONNECTED') throw new Error('Caller.say: the call is not connected');
    emu.record('caller.say', { text });
    this._voice(true);
    this._hear(C.ASREvents.CaptureStarted, {});
    const words = text.split(/\s+/).filter(Boolean);
    for (let i = 1; i <= words.length; i += 1) {
      await emu.sleep(emu.ms(wordMs));
      if (interim && i < words.length) this._hear(C.ASREvents.InterimResult, { text: words.slice(0, i).join(' ') });
    }
    this._voice(false);
    this._hear(C.ASREvents.SpeechCaptured, {});
    await emu.sleep(emu.ms(100));
    this._hear(C.ASREvents.Result, { text, confidence });
  }

  /**
   * A cough or a one-word noise: a short sound that the ASR turns into one word or nothing. Silero's
   * VAD tells most coughs from speech, so by default the VAD does not hear it; `vad: true` makes it
   * a sound the VAD takes for a voice (a short «угу» over the bot).
   */
  async cough({ text = 'кхм', confidence = 0.31, lengthMs = 250, vad = false } = {}) {
    const emu = this.emu;
    emu.record('caller.cough', { text });
    if (vad) this._voice(true);
    this._hear(C.ASREvents.CaptureStarted, {});
    await emu.sleep(emu.ms(lengthMs));
    if (vad) this._voice(false);
    if (text) this._hear(C.ASREvents.InterimResult, { text });
    this._hear(C.ASREvents.SpeechCaptured, {});
    await emu.sleep(emu.ms(100));
    this._hear(C.ASREvents.Result, { text, confidence });
  }

  /** Presses a key. */
  press(digit) {
    this.emu.record('caller.press', { digit });
    return this.call._tone(String(digit));
  }

  /** Hangs up. */
  hangup() {
    if (this.call._remoteHangup()) this.emu.record('caller.hangup', { call: this.call.id() });
  }

  /** What the caller hears right now: a Player, a Call (bridged), 'progress-tone' or null. */
  hearing() {
    return this.call.inbound;
  }
}

function summary(e) {
  const { seq, at, type, ...rest } = e;
  const s = JSON.stringify(rest);
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

module.exports = { Emulator, Caller, constants: C };
