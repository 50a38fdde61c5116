'use strict';
/**
 * The VoxEngine objects a call scenario touches: Call, ASR, Player, WebSocket.
 * Each takes the emulator session `s`, which schedules events (asynchronously,
 * in order, as VoxEngine does), records what happens and plays the far ends:
 * the caller, the TTS engine, the operator's phone. WebSocket is real: the
 * `ws` package talks to a real server.
 */
const WS = require('ws');
const {
  CallEvents, ASREvents, PlayerEvents, WebSocketEvents, SileroVADEvents, INTERIM_PROVIDERS, PROFILE_VALUES, VOICE_VALUES,
  SILERO_VAD_PARAMETERS, TTS_PLAYER_PARAMETERS, PROGRESSIVE_PROVIDERS, CALL_RECORD_PARAMETERS,
} = require('./constants');

/**
 * Checks an options object against the typings' interface (`spec`: option -> typeof): an unknown
 * option name or a value of the wrong type throws, as a typo would fail to compile against the typings.
 */
function checkOptions(where, options, spec) {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${where}: parameters must be an object (got ${options === null ? 'null' : typeof options})`);
  }
  for (const [name, value] of Object.entries(options)) {
    if (!Object.prototype.hasOwnProperty.call(spec, name)) throw new TypeError(`${where}: unknown option ${name}`);
    if (value !== undefined && typeof value !== spec[name]) {
      throw new TypeError(`${where}: option ${name} must be a ${spec[name]} (got ${typeof value})`);
    }
  }
}

class Target {
  constructor(s, events, label) {
    this._s = s;
    this._valid = new Set(Object.values(events));
    this._label = label;
    this._listeners = new Map();
  }

  addEventListener(event, callback) {
    if (!this._valid.has(event)) throw new TypeError(`${this._label}.addEventListener: unknown event ${String(event)}`);
    if (typeof callback !== 'function') throw new TypeError(`${this._label}.addEventListener: handler is not a function`);
    if (!this._listeners.has(event)) this._listeners.set(event, []);
    this._listeners.get(event).push(callback);
  }

  removeEventListener(event, callback) {
    if (!this._listeners.has(event)) return;
    if (!callback) this._listeners.delete(event);
    else this._listeners.set(event, this._listeners.get(event).filter((f) => f !== callback));
  }

  // Events reach handlers asynchronously and in order.
  _fire(event, payload) {
    this._s.dispatch(() => {
      for (const f of [...(this._listeners.get(event) || [])]) this._s.guard(() => f(payload), `${event} handler`);
    });
  }
}

// ---------------------------------------------------------------------------

class Call extends Target {
  constructor(s, { id, callerid, number, incoming, customData = '' }) {
    super(s, CallEvents, 'Call');
    this._id = id;
    this._callerid = callerid;
    this._number = number;
    this._incoming = incoming;
    this._customData = customData;
    this._state = incoming ? 'ALERTING' : 'PROGRESSING';
    this._tones = false;
    this._asrs = new Set(); // ASRs hearing this call
    this._vads = new Set(); // Silero VADs hearing this call
    this.inbound = null; // what this call's person hears: a Player, another Call, or 'progress-tone'
  }

  id() { return this._id; }
  callerid() { return this._callerid; }
  number() { return this._number; }
  incoming() { return this._incoming; }
  displayName() { return this._callerid; }
  state() { return this._state; }
  toString() { return `Call(${this._id}, ${this._state})`; }
  vad() { return this._asrs.size > 0; }
  clientType() { return 'pstn'; }

  customData(value) {
    if (value !== undefined) {
      if (Buffer.byteLength(String(value)) > 200) throw new RangeError('Call.customData: over 200 bytes');
      this._customData = String(value);
    }
    return this._customData;
  }

  _event(name, extra = {}) {
    return { call: this, name, id: this._id, ...extra };
  }

  answer() {
    if (!this._incoming) throw new Error('Call.answer: not an incoming call');
    if (this._state !== 'ALERTING') {
      this._s.violation(`Call.answer in state ${this._state}`);
      return;
    }
    this._state = 'CONNECTED';
    this._s.record('call.answered', { call: this._id });
    this._s.later(this._s.ms(20), () => this._fire(CallEvents.Connected, this._event(CallEvents.Connected, { headers: {}, customData: this._customData })));
  }

  hangup() {
    if (this._state === 'TERMINATED') return;
    const wasConnected = this._state === 'CONNECTED';
    this._state = 'TERMINATED';
    this._drop();
    this._s.record('call.hangup', { call: this._id, by: 'scenario', connected: wasConnected });
    this._s.onCallEnded(this, 'scenario');
    if (wasConnected || this._incoming) {
      this._fire(CallEvents.Disconnected, this._event(CallEvents.Disconnected, {
        headers: {}, internalCode: 200, reason: 'Normal call clearing', duration: 0, cost: 0, direction: 'pstn',
      }));
    } else {
      this._fire(CallEvents.Failed, this._event(CallEvents.Failed, { headers: {}, code: 487, reason: 'Request terminated' }));
    }
  }

  reject(code) {
    if (this._state !== 'ALERTING') return;
    this._state = 'TERMINATED';
    this._s.record('call.rejected', { call: this._id, code });
    this._fire(CallEvents.Disconnected, this._event(CallEvents.Disconnected, { headers: {}, internalCode: code, reason: 'Rejected', duration: 0, cost: 0, direction: 'pstn' }));
  }

  // Call.record(parameters: CallRecordParameters): triggers CallEvents.RecordStarted ({url}).
  record(parameters) {
    if (parameters === undefined) throw new TypeError('Call.record: parameters are required (CallRecordParameters)');
    checkOptions('Call.record', parameters, CALL_RECORD_PARAMETERS);
    this._needConnected('record');
    if (this._recording) this._s.violation('Call.record called twice');
    this._recording = true;
    this._s.record('call.record', { call: this._id, stereo: !!parameters.stereo });
    this._s.later(this._s.ms(30), () => {
      if (this._state === 'CONNECTED') {
        this._fire(CallEvents.RecordStarted, this._event(CallEvents.RecordStarted, { url: `https://records.voximplant.test/${this._id}.mp3` }));
      }
    });
  }

  handleTones(doHandle) {
    this._tones = doHandle !== false;
    this._s.record('call.tones', { call: this._id, on: this._tones });
  }

  sendMediaTo(unit) {
    this._needConnected('sendMediaTo');
    if (unit instanceof ASR) {
      if (unit._state === 'stopped') this._s.violation('Call.sendMediaTo: the ASR is stopped');
      this._asrs.add(unit);
      this._s.record('asr.attached', { call: this._id, asr: unit._id });
    } else if (unit instanceof SileroVAD) {
      if (unit._state !== 'open') this._s.violation(`Call.sendMediaTo: the VAD is ${unit._state}`);
      this._vads.add(unit);
      this._s.record('vad.attached', { call: this._id, vad: unit._id });
    } else if (unit instanceof Call) {
      unit.inbound = this;
      this._s.record('media.to', { from: this._id, to: unit._id });
    } else {
      throw new TypeError('Call.sendMediaTo: not a media unit');
    }
  }

  stopMediaTo(unit) {
    if (unit instanceof ASR) {
      this._asrs.delete(unit);
      this._s.record('asr.detached', { call: this._id, asr: unit._id });
    } else if (unit instanceof SileroVAD) {
      this._vads.delete(unit);
      this._s.record('vad.detached', { call: this._id, vad: unit._id });
    } else if (unit instanceof Call && unit.inbound === this) {
      unit.inbound = null;
    }
  }

  playProgressTone(country) {
    this._needConnected('playProgressTone');
    this._s.hear(this, 'progress-tone');
    this._s.record('call.progress_tone', { call: this._id, country });
  }

  stopPlayback() {
    if (this.inbound === 'progress-tone') this.inbound = null;
  }

  _needConnected(method) {
    if (this._state !== 'CONNECTED') this._s.violation(`Call.${method} in state ${this._state}`);
  }

  _drop() {
    for (const asr of this._asrs) this._s.record('asr.detached', { call: this._id, asr: asr._id });
    this._asrs.clear();
    for (const vad of this._vads) this._s.record('vad.detached', { call: this._id, vad: vad._id });
    this._vads.clear();
  }

  // -- the far end (driven by the emulator) --

  _remoteConnected() {
    this._state = 'CONNECTED';
    this._fire(CallEvents.Connected, this._event(CallEvents.Connected, { headers: {}, customData: '' }));
  }

  _remoteRinging() {
    this._fire(CallEvents.Ringing, this._event(CallEvents.Ringing, { headers: {} }));
  }

  _remoteFailed(code, reason) {
    if (this._state === 'TERMINATED') return;
    this._state = 'TERMINATED';
    this._fire(CallEvents.Failed, this._event(CallEvents.Failed, { headers: {}, code, reason }));
  }

  _remoteHangup() {
    if (this._state === 'TERMINATED') return false;
    this._state = 'TERMINATED';
    this._drop();
    this._fire(CallEvents.Disconnected, this._event(CallEvents.Disconnected, {
      headers: {}, internalCode: 200, reason: 'Normal call clearing', duration: 0, cost: 0, direction: 'pstn',
    }));
    return true;
  }

  _tone(digit) {
    if (this._state !== 'CONNECTED') return false;
    if (!this._tones) {
      this._s.record('tone.unhandled', { call: this._id, digit });
      return false;
    }
    this._fire(CallEvents.ToneReceived, this._event(CallEvents.ToneReceived, { tone: digit }));
    return true;
  }
}

// ---------------------------------------------------------------------------

class ASR extends Target {
  constructor(s, id, parameters) {
    super(s, ASREvents, 'ASR');
    if (!parameters || !PROFILE_VALUES.has(parameters.profile)) {
      throw new TypeError(`VoxEngine.createASR: profile is required and must come from ASRProfileList (got ${parameters && parameters.profile})`);
    }
    this._id = id;
    this._profile = parameters.profile;
    const provider = parameters.profile.split('.')[1];
    this._interim = !!parameters.interimResults && INTERIM_PROVIDERS.has(provider);
    this._state = 'running';
    this._startedAt = Date.now();
    s.record('asr.created', { asr: id, profile: parameters.profile, interimResults: !!parameters.interimResults, interimDelivered: this._interim, singleUtterance: !!parameters.singleUtterance });
    this._fire(ASREvents.Started, { asr: this });
  }

  id() { return this._id; }
  language() { return this._profile; }
  dictionary() { return []; }

  stop() {
    if (this._state === 'stopped') return;
    this._state = 'stopped';
    this._s.record('asr.stopped', { asr: this._id });
    this._fire(ASREvents.Stopped, { asr: this, cost: '0', duration: (Date.now() - this._startedAt) / 1000 });
  }

  _hear(event, extra = {}) {
    if (this._state !== 'running') return;
    if (event === ASREvents.InterimResult && !this._interim) return;
    this._fire(event, { asr: this, ...extra });
  }
}

// ---------------------------------------------------------------------------

class Player extends Target {
  constructor(s, id, text, parameters = {}) {
    super(s, PlayerEvents, 'Player');
    this._id = id;
    this._text = String(text);
    this._voice = parameters.voice;
    this._state = 'created';
    this._to = new Set();
    this._timers = [];
    checkOptions('VoxEngine.createTTSPlayer', parameters, TTS_PLAYER_PARAMETERS);
    if (parameters.voice !== undefined && !VOICE_VALUES.has(parameters.voice)) {
      throw new TypeError(`VoxEngine.createTTSPlayer: voice must come from VoiceList (got ${parameters.voice})`);
    }
    if (parameters.progressivePlayback) {
      const provider = String(parameters.voice || '').split('.')[1];
      if (!PROGRESSIVE_PROVIDERS.has(provider)) {
        s.violation(`createTTSPlayer: progressivePlayback is not available for ${provider || 'the default voice'}`);
      }
    }
    this._durationMs = s.ttsDurationMs(this._text);
    s.record('tts.created', {
      player: id, text: this._text, voice: parameters.voice, progressive: parameters.progressivePlayback, options: { ...parameters },
    });
    this._fire(PlayerEvents.Created, { player: this });
    if (this._text.length > 1500) {
      this._state = 'finished';
      this._fire(PlayerEvents.PlaybackFinished, { player: this, error: 'Text is too long (over 1500 characters)' });
      return;
    }
    this._timers.push(s.later(s.ttsLatencyMs(), () => this._start()));
  }

  id() { return this._id; }

  sendMediaTo(unit) {
    if (!(unit instanceof Call)) throw new TypeError('Player.sendMediaTo: not a call');
    if (this._state === 'stopped') this._s.violation('Player.sendMediaTo after stop()');
    this._to.add(unit);
    this._s.hear(unit, this);
  }

  stopMediaTo(unit) {
    this._to.delete(unit);
    if (unit.inbound === this) unit.inbound = null;
  }

  pause() { this._s.violation('Player.pause is not emulated'); }
  resume() { this._s.violation('Player.resume is not emulated'); }
  addMarker() { this._s.violation('Player.addMarker is not emulated'); }

  stop() {
    if (this._state === 'stopped' || this._state === 'finished') return;
    const playedMs = this._state === 'playing' ? Date.now() - this._startedAt : 0;
    this._state = 'stopped';
    for (const t of this._timers) clearTimeout(t);
    this._s.record('tts.stopped', {
      player: this._id, text: this._text, playedMs, fraction: this._durationMs ? Math.min(1, playedMs / this._durationMs) : 0,
      heard: this._heard(),
    });
    this._fire(PlayerEvents.Stopped, { player: this });
  }

  _heard() {
    for (const call of this._to) if (call.inbound === this && call.state() === 'CONNECTED') return true;
    return false;
  }

  _start() {
    if (this._state !== 'created') return;
    this._state = 'playing';
    this._startedAt = Date.now();
    this._fire(PlayerEvents.PlaybackReady, { player: this });
    this._fire(PlayerEvents.Started, { player: this, duration: this._s.virtualSeconds(this._text) });
    // Recorded after the events are queued, so a test reacting to it speaks while the piece plays.
    this._s.record('tts.started', { player: this._id, text: this._text, heard: this._heard() });
    this._timers.push(this._s.later(this._durationMs, () => this._finish()));
  }

  _finish() {
    if (this._state !== 'playing') return;
    this._state = 'finished';
    this._s.record('tts.finished', { player: this._id, text: this._text, heard: this._heard() });
    this._fire(PlayerEvents.PlaybackFinished, { player: this });
  }
}

// ---------------------------------------------------------------------------

/**
 * `Silero.VAD` (typings: declare namespace Silero, class VAD): made by `Silero.createVAD(parameters)`,
 * which resolves once its connector is up; hears a call through `call.sendMediaTo(vad)` and reports
 * `Silero.VADEvents.Result` with `speechStartAt` when a voice starts and `speechEndAt` once it has been
 * followed by `minSilenceDurationMs` of silence (times in seconds since the VAD started).
 */
class SileroVAD extends Target {
  constructor(s, id, parameters) {
    super(s, SileroVADEvents, 'Silero.VAD');
    checkOptions('Silero.createVAD', parameters, SILERO_VAD_PARAMETERS);
    const p = parameters || {};
    if (p.threshold !== undefined && !(p.threshold >= 0 && p.threshold <= 1)) {
      throw new RangeError(`Silero.createVAD: threshold must be within 0..1 (got ${p.threshold})`);
    }
    for (const name of ['minSilenceDurationMs', 'speechPadMs']) {
      if (p[name] !== undefined && !(p[name] >= 0)) throw new RangeError(`Silero.createVAD: ${name} must be >= 0`);
    }
    this._id = id;
    this._state = 'open';
    this._startedAt = Date.now();
    this._minSilenceMs = p.minSilenceDurationMs === undefined ? 300 : p.minSilenceDurationMs; // the typings' default
    this._speaking = false;
    this._endTimer = null;
    s.record('vad.created', { vad: id, parameters: { ...p } });
  }

  id() { return this._id; }
  webSocketId() { return `${this._id}-ws`; }

  close() {
    if (this._state === 'closed') return;
    this._state = 'closed';
    if (this._endTimer) clearTimeout(this._endTimer);
    this._s.record('vad.closed', { vad: this._id });
  }

  reset() {
    if (this._state === 'closed') {
      this._s.violation('Silero.VAD.reset after close()');
      return;
    }
    this._speaking = false;
    this._fire(SileroVADEvents.Reset, { vad: this });
  }

  _seconds() {
    return (Date.now() - this._startedAt) / 1000;
  }

  // The caller's voice starts (or goes on: a pause shorter than minSilenceDurationMs does not end it).
  _voiceStart() {
    if (this._state !== 'open') return;
    if (this._endTimer) {
      clearTimeout(this._endTimer);
      this._endTimer = null;
    }
    if (this._speaking) return;
    this._speaking = true;
    this._fire(SileroVADEvents.Result, { vad: this, speechStartAt: this._seconds() });
  }

  // The caller's voice stops: the end is reported after minSilenceDurationMs of silence.
  _voiceEnd() {
    if (this._state !== 'open' || !this._speaking) return;
    this._endTimer = this._s.later(this._s.ms(this._minSilenceMs), () => {
      this._endTimer = null;
      if (this._state !== 'open' || !this._speaking) return;
      this._speaking = false;
      this._fire(SileroVADEvents.Result, { vad: this, speechEndAt: this._seconds() });
    });
  }

  _error(reason) {
    if (this._state !== 'open') return;
    this._fire(SileroVADEvents.Error, { vad: this, reason });
  }
}

// ---------------------------------------------------------------------------

class WebSocket extends Target {
  constructor(s, id, url, parameters) {
    super(s, WebSocketEvents, 'WebSocket');
    if (!/^wss?:\/\//.test(String(url))) throw new TypeError(`VoxEngine.createWebSocket: bad url ${url}`);
    this._id = id;
    this.url = String(url);
    this.readyState = 'connecting';
    this.onopen = null;
    this.onclose = null;
    this.onmessage = null;
    this.onerror = null;
    let protocols = parameters && parameters.protocols !== undefined ? parameters.protocols : 'chat';
    if (!Array.isArray(protocols)) protocols = [protocols];
    const headers = {};
    for (const h of (parameters && parameters.headers) || []) headers[h.name] = h.value;
    s.record('ws.connecting', { ws: id, url: this.url, protocols });
    const sock = new WS(this.url, protocols, { headers, handshakeTimeout: 5000 });
    this._sock = sock;
    s.sockets.add(this);
    sock.on('open', () => {
      this.readyState = 'open';
      s.record('ws.open', { ws: id, protocol: sock.protocol });
      this._emit(WebSocketEvents.OPEN, 'onopen', { websocket: this });
    });
    sock.on('message', (data, isBinary) => {
      const text = data.toString('utf8');
      let frame = null;
      try { frame = JSON.parse(text); } catch (err) { /* recorded raw */ }
      s.record('ws.received', { ws: id, text, frame, binary: isBinary });
      this._emit(WebSocketEvents.MESSAGE, 'onmessage', { websocket: this, text });
    });
    sock.on('error', (err) => {
      s.record('ws.error', { ws: id, message: err.message });
      this._emit(WebSocketEvents.ERROR, 'onerror', { websocket: this });
    });
    sock.on('close', (code, reason) => {
      this.readyState = 'closed';
      s.sockets.delete(this);
      s.record('ws.closed', { ws: id, code, reason: reason.toString(), wasClean: code !== 1006 });
      this._emit(WebSocketEvents.CLOSE, 'onclose', { websocket: this, code, reason: reason.toString(), wasClean: code !== 1006 });
    });
  }

  id() { return this._id; }

  send(data) {
    if (this.readyState !== 'open') {
      this._s.violation(`WebSocket.send while ${this.readyState}`);
      return;
    }
    const text = String(data);
    let frame = null;
    try { frame = JSON.parse(text); } catch (err) { /* recorded raw */ }
    this._s.record('ws.sent', { ws: this._id, text, frame });
    this._sock.send(text);
  }

  close() {
    if (this.readyState === 'closed' || this.readyState === 'closing') return;
    this.readyState = 'closing';
    this._s.record('ws.close', { ws: this._id });
    this._sock.close(1000);
  }

  sendMediaTo() { this._s.violation('WebSocket.sendMediaTo is not emulated'); }
  stopMediaTo() { this._s.violation('WebSocket.stopMediaTo is not emulated'); }

  _emit(event, prop, payload) {
    const handler = this[prop];
    if (typeof handler === 'function') this._s.dispatch(() => this._s.guard(() => handler(payload), `WebSocket.${prop}`));
    this._fire(event, payload);
  }

  _kill() {
    if (this.readyState !== 'closed') this._sock.terminate();
  }
}

module.exports = { Call, ASR, Player, SileroVAD, WebSocket, checkOptions };
