/**
 * Metrotest voice assistant: the Voximplant (VoxEngine) call scenario.
 *
 * Voximplant answers the call, recognises the caller's speech (ASR) and speaks
 * (TTS); our server decides what to say. One WebSocket per call carries the
 * protocol of shared/PROTOCOL.md: setup, prompt, interrupt, dtmf, recording,
 * silence, hangup up; text, transfer, end, error down.
 *
 * What the scenario does on its own, without the server:
 *  - barge-in: voice over the bot stops the player, drops the pieces not yet
 *    spoken and reports what was played; a cough or one word of noise does not.
 *    Where the platform has Silero VAD (require(Modules.Silero)), a voice the
 *    VAD hears for bargeInVadMs over the bot interrupts it; without it (or with
 *    bargeInVad off, or the VAD failing) a voice the ASR hears for
 *    bargeInHoldMs does. Two words of interim text interrupt in either case;
 *  - silence: after silenceMs without speech a `silence` frame; the server
 *    answers with its reprompt (the admin panel's setting), the second time
 *    with its goodbye and `end`. Only a server that answers neither report
 *    gets the scenario's own goodbye after a third stretch;
 *  - the server unreachable or dropping: an apology, then the operator, or a
 *    request to call back when no operator number is set. Never silence.
 *
 * VoxEngine APIs beyond the basics, as Voximplant's typings declare them
 * (typings/voxengine.d.ts in voximplant/voxengine-ci, VoxEngine 7.57.0):
 *  - `Silero.createVAD(parameters: Silero.VADParameters): Promise<Silero.VAD>`,
 *    VADParameters {threshold?, minSilenceDurationMs?, speechPadMs?};
 *    `Silero.VADEvents.Result` {speechStartAt?, speechEndAt?} (seconds),
 *    `Silero.VADEvents.Error` {reason}; `Silero.VAD.close()`; `Silero.VAD` is a
 *    `VoxMediaUnit`, so `call.sendMediaTo(vad)` feeds it the caller's voice;
 *  - `VoxEngine.createTTSPlayer(text, TTSPlayerParameters)` with
 *    `progressivePlayback?: boolean` ("available for providers: Amazon, Google,
 *    IBM, Microsoft, SaluteSpeech, T-Bank, Yandex": not YandexV3);
 *  - `Call.record(parameters: CallRecordParameters)` "triggers the
 *    CallEvents.RecordStarted event", whose `_RecordStartedEvent.url` is the
 *    link to the record file.
 *
 * Settings: the block below holds the defaults. Application storage keys
 * "metrotest:<name>" override them (secrets and per-installation values live
 * there, not in this file), and the call's customData, a JSON object of at
 * most 200 bytes, overrides both for one call.
 */
require(Modules.ASR);
require(Modules.ApplicationStorage);

// Silero VAD is a module some accounts and VoxEngine versions lack: without it barge-in keeps the ASR rules.
let sileroLoaded = false;
try {
  if (Modules.Silero) {
    require(Modules.Silero);
    sileroLoaded = typeof Silero !== 'undefined' && typeof Silero.createVAD === 'function';
  }
} catch (err) {
  sileroLoaded = false;
}

const SETTINGS = {
  serverUrl: 'wss://bot.example.ru/voice/ws', // the call WebSocket of our server
  token: '', // VOICE_TOKEN of the server: keep it in application storage
  operatorPhone: '', // E.164 number of a person, used when the server is unreachable
  callerId: '', // caller ID of the transfer leg; empty: the number the caller dialled
  asrProfile: 'Yandex.ru_RU', // a path in ASRProfileList
  voice: 'Yandex.Neural.ru_RU_alena', // a path in VoiceList
  silenceMs: 10000, // no speech this long: a `silence` frame (the server reprompts, then says goodbye)
  bargeInWords: 2, // interim words that interrupt the bot
  bargeInVad: true, // barge-in from Silero voice activity detection where the platform has it; false: the ASR only
  bargeInVadMs: 400, // a voice the VAD hears this long over the bot interrupts it (0: at once)
  vadThreshold: 0.5, // Silero's speech probability threshold, 0..1: higher ignores more noise
  bargeInHoldMs: 800, // without the VAD: a voice the ASR hears this long over the bot interrupts it
  progressivePlayback: true, // TTS delivered in chunks, so a piece starts sooner (voices whose provider has it)
  record: true, // record the call (stereo) and send the recording's link to the server (`recording`)
  connectTimeoutMs: 5000, // the server must greet within this
  transferRingMs: 40000, // give up ringing the operator after this
};

// Everything the caller hears from the scenario itself (the server's words come over the socket).
const PHRASES = {
  transfer: 'Соединяю вас с сотрудником, оставайтесь на линии.',
  serverDownTransfer: 'Извините, у нас техническая неполадка. Соединяю вас с сотрудником, оставайтесь на линии.',
  serverDownCallBack: 'Извините, у нас техническая неполадка. Пожалуйста, перезвоните нам немного позже. До свидания.',
  noOperator: 'К сожалению, сейчас я не могу соединить вас с сотрудником. Пожалуйста, перезвоните нам позже. До свидания.',
  transferFailed: 'К сожалению, сейчас никто из сотрудников не может ответить. Пожалуйста, перезвоните нам позже. Спасибо за звонок, до свидания.',
  silenceGoodbye: 'Я вас не слышу. Перезвоните, пожалуйста, когда вам будет удобно. До свидания.',
};

const SETTINGS_WAIT_MS = 3000; // application storage slower than this: go on with what we have
const CLOSE_WAIT_MS = 1000; // let the hangup frame leave before the session ends
const TTS_MAX_CHARS = 1500; // longer text fails in createTTSPlayer
// Silero reports the end of a voice after this much silence (its default is 300): a short sound over the
// bot ends before bargeInVadMs runs out, so it does not interrupt.
const VAD_MIN_SILENCE_MS = 150;
// TTSPlayerParameters.progressivePlayback: "Available for providers: Amazon, Google, IBM, Microsoft,
// SaluteSpeech, T-Bank, Yandex" (typings). A VoiceList path starts with its provider.
const PROGRESSIVE_PROVIDERS = ['Amazon', 'Google', 'IBM', 'Microsoft', 'SaluteSpeech', 'TBank', 'Yandex'];

let sessionId = '';
VoxEngine.addEventListener(AppEvents.Started, (e) => {
  sessionId = e.sessionId == null ? '' : String(e.sessionId);
});

VoxEngine.addEventListener(AppEvents.CallAlerting, (e) => {
  new CallSession(e).start();
});

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

function coerce(name, value) {
  if (typeof SETTINGS[name] === 'boolean') {
    if (value === true || value === false) return value;
    const v = String(value).trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].indexOf(v) >= 0) return true;
    if (['false', '0', 'no', 'off'].indexOf(v) >= 0) return false;
    return undefined;
  }
  if (typeof SETTINGS[name] === 'number') {
    const n = Number(value);
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  }
  return value == null ? undefined : String(value);
}

function parseCustomData(e) {
  let raw = e.customData;
  if (!raw && e.call && typeof e.call.customData === 'function') raw = e.call.customData();
  if (!raw && typeof VoxEngine.customData === 'function') raw = VoxEngine.customData();
  if (!raw) return {};
  try {
    const data = JSON.parse(raw);
    return data && typeof data === 'object' ? data : {};
  } catch (err) {
    Logger.write('metrotest: customData is not JSON, ignored');
    return {};
  }
}

async function loadSettings(e) {
  const s = Object.assign({}, SETTINGS);
  const names = Object.keys(SETTINGS);
  const stored = await Promise.all(
    names.map((name) => ApplicationStorage.get('metrotest:' + name).catch(() => null)),
  );
  names.forEach((name, i) => {
    const item = stored[i];
    if (item && item.value != null && item.value !== '') {
      const v = coerce(name, item.value);
      if (v !== undefined) s[name] = v;
    }
  });
  const custom = parseCustomData(e);
  Object.keys(custom).forEach((name) => {
    if (!(name in SETTINGS)) return;
    const v = coerce(name, custom[name]);
    if (v !== undefined) s[name] = v;
  });
  return s;
}

function withTimeout(promise, ms, fallback) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback()), ms);
    promise.then(
      (v) => { clearTimeout(timer); resolve(v); },
      () => { clearTimeout(timer); resolve(fallback()); },
    );
  });
}

function lookup(root, path) {
  return String(path).split('.').reduce((o, k) => (o == null ? undefined : o[k]), root);
}

// ---------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------

function wordCount(text) {
  return String(text || '').trim().split(/\s+/).filter((w) => /[\p{L}\p{N}]/u.test(w)).length;
}

// Server pieces are sentences; this only guards the TTS limit.
function splitForTts(text) {
  const parts = [];
  let rest = text;
  while (rest.length > TTS_MAX_CHARS) {
    let cut = rest.lastIndexOf(' ', TTS_MAX_CHARS);
    if (cut <= 0) cut = TTS_MAX_CHARS;
    parts.push(rest.slice(0, cut));
    rest = rest.slice(cut).trim();
  }
  parts.push(rest);
  return parts;
}

// ---------------------------------------------------------------------------
// One call
// ---------------------------------------------------------------------------

class CallSession {
  constructor(e) {
    this.alerting = e;
    this.call = e.call;
    this.s = Object.assign({}, SETTINGS);
    // dialog: talking with the server; closing: saying a last phrase before hanging up;
    // transfer: saying the transfer phrase or ringing the operator; bridged: caller and operator talk.
    this.mode = 'starting';
    this.ws = null;
    this.wsOpen = false;
    this.setupSent = false;
    this.greeted = false;
    this.serverGone = false;
    this.hangupSent = false;
    this.outbox = []; // frames raised before setup went out
    this.asr = null;
    this.capturing = false; // the ASR hears a voice right now
    this.vad = null; // the Silero VAD hearing the caller, once created and attached
    this.vadSpeech = false; // the VAD hears a voice right now
    this.progressive = false; // pass progressivePlayback to the TTS
    this.queue = []; // pieces waiting to be spoken, in order
    this.player = null;
    this.answers = {}; // answerId -> {id, played: [], startedAt, done}
    this.openAnswer = null; // the server answer being spoken (or awaited piece by piece)
    this.afterSpeech = null; // what to do once the queue is spoken (transfer, hang up)
    this.timers = {};
    this.silenceStrikes = 0;
    this.outCall = null;
    this.terminated = false;

    const call = this.call;
    call.addEventListener(CallEvents.Connected, () => this.onConnected());
    call.addEventListener(CallEvents.Disconnected, () => this.finish('caller_hangup', false));
    call.addEventListener(CallEvents.Failed, () => this.finish('caller_hangup', false));
    call.addEventListener(CallEvents.RecordStarted, (ev) => this.send({ type: 'recording', url: ev.url }));
    call.addEventListener(CallEvents.RecordError, (ev) => Logger.write('metrotest: record error ' + ev.error));
    call.addEventListener(CallEvents.ToneReceived, (ev) => this.onTone(ev.tone));
  }

  async start() {
    this.s = await withTimeout(loadSettings(this.alerting), SETTINGS_WAIT_MS, () => Object.assign({}, SETTINGS));
    if (this.mode !== 'starting') return; // the caller gave up while we read the settings
    this.asrProfile = lookup(ASRProfileList, this.s.asrProfile);
    if (this.asrProfile === undefined) {
      Logger.write('metrotest: unknown asrProfile ' + this.s.asrProfile + ', using the default');
      this.asrProfile = lookup(ASRProfileList, SETTINGS.asrProfile);
    }
    let voicePath = this.s.voice;
    this.voice = lookup(VoiceList, voicePath);
    if (this.voice === undefined) {
      Logger.write('metrotest: unknown voice ' + this.s.voice + ', using the default');
      voicePath = SETTINGS.voice;
      this.voice = lookup(VoiceList, voicePath);
    }
    const provider = String(voicePath).split('.')[0];
    this.progressive = !!this.s.progressivePlayback && PROGRESSIVE_PROVIDERS.indexOf(provider) >= 0;
    if (this.s.progressivePlayback && !this.progressive) {
      Logger.write('metrotest: no progressive playback for ' + provider + ' voices');
    }
    this.call.answer();
  }

  onConnected() {
    if (this.mode !== 'starting') return;
    this.mode = 'dialog';
    if (this.s.record) this.call.record({ stereo: true }); // caller on the right channel, bot on the left
    this.call.handleTones(true);
    this.startAsr();
    this.startVad();
    this.connectServer();
  }

  // -- timers ---------------------------------------------------------------

  setTimer(name, ms, fn) {
    this.clearTimer(name);
    this.timers[name] = setTimeout(() => {
      delete this.timers[name];
      fn();
    }, ms);
  }

  clearTimer(name) {
    if (this.timers[name] !== undefined) {
      clearTimeout(this.timers[name]);
      delete this.timers[name];
    }
  }

  clearTimers() {
    Object.keys(this.timers).forEach((name) => this.clearTimer(name));
  }

  // -- server socket -------------------------------------------------------

  connectServer() {
    const base = this.s.serverUrl;
    const url = base + (base.indexOf('?') >= 0 ? '&' : '?') + 'token=' + encodeURIComponent(this.s.token);
    let ws;
    try {
      ws = VoxEngine.createWebSocket(url, { protocols: 'chat' });
    } catch (err) {
      this.serverLost('cannot create the socket: ' + err);
      return;
    }
    this.ws = ws;
    ws.addEventListener(WebSocketEvents.OPEN, () => {
      if (this.ws !== ws) return;
      this.wsOpen = true;
      this.sendSetup();
    });
    ws.addEventListener(WebSocketEvents.MESSAGE, (ev) => {
      if (this.ws === ws) this.onServerFrame(ev.text);
    });
    ws.addEventListener(WebSocketEvents.CLOSE, (ev) => {
      if (this.ws === ws) this.serverLost('closed ' + ev.code + ' ' + (ev.reason || ''));
    });
    ws.addEventListener(WebSocketEvents.ERROR, () => {
      if (this.ws === ws) this.serverLost('socket error');
    });
    this.setTimer('connect', this.s.connectTimeoutMs, () => this.serverLost('no greeting in time'));
  }

  sendSetup() {
    const e = this.alerting;
    this.sendNow({
      type: 'setup',
      callId: this.call.id(),
      from: e.callerid || this.call.callerid(),
      to: e.destination || this.call.number(),
      sessionId,
    });
    this.setupSent = true;
    const pending = this.outbox;
    this.outbox = [];
    pending.forEach((frame) => this.sendNow(frame));
  }

  send(frame) {
    if (this.hangupSent || this.serverGone) return;
    if (!this.setupSent) {
      this.outbox.push(frame); // the server wants setup first
      return;
    }
    this.sendNow(frame);
  }

  sendNow(frame) {
    if (!this.ws || !this.wsOpen) return;
    try {
      this.ws.send(JSON.stringify(frame));
    } catch (err) {
      Logger.write('metrotest: send failed: ' + err);
    }
  }

  onServerFrame(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch (err) {
      Logger.write('metrotest: server frame is not JSON');
      return;
    }
    if (!m || typeof m.type !== 'string') return;
    if (!this.greeted) {
      this.greeted = true;
      this.clearTimer('connect');
    }
    if (m.type === 'text') this.onText(m);
    else if (m.type === 'transfer') this.onTransfer(m);
    else if (m.type === 'end') this.onEnd(m);
    else if (m.type === 'error') Logger.write('metrotest: server error ' + m.code + ': ' + m.message);
    else Logger.write('metrotest: unknown server frame ' + m.type);
  }

  // The socket is gone or never came up: never leave the caller in silence.
  serverLost(why) {
    if (this.serverGone || this.hangupSent || this.mode === 'ended') return;
    this.serverGone = true;
    this.clearTimer('connect');
    Logger.write('metrotest: server lost: ' + why);
    const ws = this.ws;
    this.ws = null;
    this.wsOpen = false;
    if (ws) {
      try { ws.close(); } catch (err) { /* already closed */ }
    }
    if (this.mode !== 'dialog') return; // already closing or transferring: that goes on without it
    this.silenceSpeech();
    if (this.s.operatorPhone) this.transferTo(this.s.operatorPhone, PHRASES.serverDownTransfer);
    else this.closeWith(PHRASES.serverDownCallBack, 'server_unreachable');
  }

  // Sends hangup once and closes the socket; calls done() when the frame had its chance to leave.
  finishServer(reason, done) {
    const ws = this.ws;
    const hadSocket = !!(ws && this.wsOpen && this.setupSent && !this.hangupSent);
    if (hadSocket) this.sendNow({ type: 'hangup', reason });
    this.hangupSent = true;
    this.clearTimer('connect');
    this.ws = null;
    this.wsOpen = false;
    if (!ws) {
      if (done) done();
      return;
    }
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      if (done) done();
    };
    if (done) {
      ws.addEventListener(WebSocketEvents.CLOSE, once);
      setTimeout(once, CLOSE_WAIT_MS);
    }
    try { ws.close(); } catch (err) { once(); }
  }

  // -- speech out ------------------------------------------------------------

  onText(m) {
    if (this.mode !== 'dialog') return;
    const id = String(m.answerId);
    const answer = this.answers[id] || (this.answers[id] = { id, played: [], startedAt: null, done: false });
    if (answer.done) return; // interrupted: the server may still have a piece in flight
    if (this.openAnswer && this.openAnswer !== answer && !this.openAnswer.done) {
      // A new answer while the old one is unfinished: the server moved on.
      this.openAnswer.done = true;
      this.queue = this.queue.filter((p) => p.answerId !== this.openAnswer.id);
    }
    this.openAnswer = answer;
    this.clearTimer('silence');
    const text = String(m.text == null ? '' : m.text);
    const parts = splitForTts(text);
    parts.forEach((part, i) => {
      this.queue.push({ kind: 'answer', answerId: id, text: part, last: !!m.last && i === parts.length - 1 });
    });
    this.pump();
  }

  say(text, kind) {
    splitForTts(text).forEach((part) => this.queue.push({ kind, text: part, last: true }));
    this.pump();
  }

  pump() {
    if (this.player || this.mode === 'ended') return;
    while (this.queue.length) {
      const piece = this.queue.shift();
      if (!piece.text.trim()) {
        this.pieceDone(piece, false);
        continue;
      }
      this.play(piece);
      return;
    }
    this.onIdle();
  }

  play(piece) {
    const options = { voice: this.voice };
    if (this.progressive) options.progressivePlayback = true;
    const player = VoxEngine.createTTSPlayer(piece.text, options);
    this.player = player;
    const createdAt = Date.now();
    const answer = piece.kind === 'answer' ? this.answers[piece.answerId] : null;
    if (answer && answer.startedAt === null) answer.startedAt = createdAt;
    player.addEventListener(PlayerEvents.Started, () => {
      if (player !== this.player || !answer) return;
      if (answer.played.length === 0 && answer.startedAt === createdAt) answer.startedAt = Date.now();
    });
    // Guarded by identity: a stopped player's late events must not advance the queue.
    const finished = (ev) => {
      if (player !== this.player) return;
      this.player = null;
      if (ev && ev.error) Logger.write('metrotest: TTS error: ' + ev.error);
      this.pieceDone(piece, !(ev && ev.error));
      this.pump();
    };
    player.addEventListener(PlayerEvents.PlaybackFinished, finished);
    player.addEventListener(PlayerEvents.Error, finished);
    player.sendMediaTo(this.call);
  }

  pieceDone(piece, spoken) {
    if (piece.kind !== 'answer') return;
    const answer = this.answers[piece.answerId];
    if (!answer) return;
    if (spoken) answer.played.push(piece.text);
    if (piece.last) answer.done = true;
  }

  onIdle() {
    if (this.afterSpeech) {
      const next = this.afterSpeech;
      this.afterSpeech = null;
      next();
      return;
    }
    if (this.mode === 'dialog' && !this.answerOpen()) this.armSilence();
  }

  answerOpen() {
    return !!(this.openAnswer && !this.openAnswer.done);
  }

  // The bot holds the floor: a piece playing or queued, or an answer still streaming in.
  speaking() {
    return this.mode === 'dialog' && (this.player !== null || this.queue.length > 0 || this.answerOpen());
  }

  stopPlayer() {
    const p = this.player;
    this.player = null;
    if (p) {
      try { p.stop(); } catch (err) { /* already finished */ }
    }
  }

  // Stops whatever the bot says, without telling the server (used when leaving the dialog).
  silenceSpeech() {
    this.queue = [];
    this.stopPlayer();
    if (this.openAnswer) this.openAnswer.done = true;
  }

  // The caller spoke over the bot.
  bargeIn(why) {
    if (!this.speaking()) return;
    this.clearTimer('hold');
    this.clearTimer('vadHold');
    const answer = this.answerOpen() ? this.openAnswer : null;
    this.queue = [];
    this.stopPlayer();
    Logger.write('metrotest: barge-in (' + why + ')');
    if (!answer) return; // a local phrase (a fallback or closing phrase): nothing to report
    answer.done = true;
    this.send({
      type: 'interrupt',
      answerId: answer.id,
      utteranceUntilInterrupt: answer.played.join(' '),
      durationUntilInterruptMs: answer.startedAt === null ? 0 : Math.max(0, Date.now() - answer.startedAt),
    });
  }

  // -- speech in -------------------------------------------------------------

  startAsr() {
    const asr = VoxEngine.createASR({ profile: this.asrProfile, interimResults: true, singleUtterance: true });
    this.asr = asr;
    asr.addEventListener(ASREvents.CaptureStarted, () => this.onVoiceStart());
    asr.addEventListener(ASREvents.SpeechCaptured, () => this.onVoiceEnd());
    asr.addEventListener(ASREvents.InterimResult, (ev) => this.onInterim(ev.text));
    asr.addEventListener(ASREvents.Result, (ev) => this.onResult(ev.text, ev.confidence));
    asr.addEventListener(ASREvents.ASRError, (ev) => Logger.write('metrotest: ASR error: ' + ev.error));
    this.call.sendMediaTo(asr); // attached for the whole call: barge-in needs ears while the bot talks
  }

  stopAsr() {
    const asr = this.asr;
    this.asr = null;
    this.capturing = false;
    if (!asr) return;
    try {
      this.call.stopMediaTo(asr);
      asr.stop();
    } catch (err) { /* the call is gone */ }
  }

  // -- voice activity (Silero VAD) ------------------------------------------------

  startVad() {
    if (!this.s.bargeInVad) return;
    if (!sileroLoaded) {
      Logger.write('metrotest: no Silero VAD on this platform, barge-in from the ASR');
      return;
    }
    let pending;
    try {
      pending = Silero.createVAD({ threshold: this.s.vadThreshold, minSilenceDurationMs: VAD_MIN_SILENCE_MS });
    } catch (err) {
      Logger.write('metrotest: Silero VAD not created (' + err + '), barge-in from the ASR');
      return;
    }
    Promise.resolve(pending).then((vad) => {
      if (this.mode !== 'dialog' || !this.asr) { // the dialog is over already
        try { vad.close(); } catch (err) { /* closed */ }
        return;
      }
      this.vad = vad;
      vad.addEventListener(Silero.VADEvents.Result, (ev) => {
        if (this.vad === vad) this.onVadResult(ev);
      });
      vad.addEventListener(Silero.VADEvents.Error, (ev) => {
        if (this.vad === vad) this.vadFailed('error: ' + ev.reason);
      });
      this.call.sendMediaTo(vad);
    }, (err) => {
      Logger.write('metrotest: Silero VAD not created (' + err + '), barge-in from the ASR');
    });
  }

  stopVad() {
    const vad = this.vad;
    this.vad = null;
    this.vadSpeech = false;
    this.clearTimer('vadHold');
    if (!vad) return;
    try { this.call.stopMediaTo(vad); } catch (err) { /* the call is gone */ }
    try { vad.close(); } catch (err) { /* closed */ }
  }

  // The VAD broke mid-call: barge-in goes back to the ASR rules.
  vadFailed(why) {
    Logger.write('metrotest: Silero VAD ' + why + ', barge-in from the ASR');
    this.stopVad();
  }

  onVadResult(ev) {
    if (ev.speechEndAt !== undefined && ev.speechEndAt !== null) {
      this.vadSpeech = false;
      this.clearTimer('vadHold'); // a cough or an «угу»: over before the hold
      return;
    }
    if (ev.speechStartAt === undefined || ev.speechStartAt === null) return;
    this.vadSpeech = true;
    if (this.mode !== 'dialog' || !this.speaking()) return;
    if (this.s.bargeInVadMs <= 0) {
      this.bargeIn('voice (VAD)');
      return;
    }
    this.setTimer('vadHold', this.s.bargeInVadMs, () => {
      if (this.vadSpeech) this.bargeIn('voice (VAD)');
    });
  }

  onVoiceStart() {
    if (this.mode !== 'dialog') return;
    this.capturing = true;
    this.clearTimer('silence');
    // Without the VAD: a held voice interrupts even if the ASR is slow with words; a cough ends before
    // the hold. With the VAD, which tells a voice from noise better than the ASR's capture, it decides.
    if (this.speaking() && !this.vad) this.setTimer('hold', this.s.bargeInHoldMs, () => {
      if (this.capturing) this.bargeIn('voice held');
    });
  }

  onVoiceEnd() {
    this.capturing = false;
    this.clearTimer('hold');
    this.touchSilence();
  }

  onInterim(text) {
    if (this.mode !== 'dialog') return;
    this.clearTimer('silence');
    if (wordCount(text) >= this.s.bargeInWords) this.bargeIn('words');
  }

  onResult(rawText, confidence) {
    this.capturing = false;
    this.clearTimer('hold');
    if (this.mode !== 'dialog') return;
    const text = String(rawText || '').trim();
    if (!text) {
      this.touchSilence();
      return;
    }
    if (this.speaking()) {
      if (wordCount(text) < this.s.bargeInWords) {
        Logger.write('metrotest: noise over the bot ignored: ' + text);
        return;
      }
      this.bargeIn('result');
    }
    this.silenceStrikes = 0;
    const frame = { type: 'prompt', text, last: true };
    if (typeof confidence === 'number' && Number.isFinite(confidence)) frame.confidence = confidence;
    this.send(frame);
    this.armSilence(); // the answer is due; if it never comes the caller is not left hanging
  }

  onTone(tone) {
    if (this.mode !== 'dialog') return;
    this.silenceStrikes = 0;
    if (this.speaking()) this.bargeIn('key');
    this.send({ type: 'dtmf', digit: String(tone) });
    this.touchSilence();
  }

  // -- silence ----------------------------------------------------------------

  armSilence() {
    if (this.mode !== 'dialog') return;
    this.setTimer('silence', this.s.silenceMs, () => this.onSilence());
  }

  touchSilence() {
    this.clearTimer('silence');
    if (this.mode === 'dialog' && !this.speaking() && !this.capturing) this.armSilence();
  }

  // The server decides what silence gets (its reprompt, then its goodbye and `end`): the
  // scenario reports it, and says goodbye itself only if two reports went unanswered.
  onSilence() {
    if (this.mode !== 'dialog' || this.speaking() || this.capturing) return;
    this.silenceStrikes += 1;
    if (this.silenceStrikes > 2) {
      this.closeWith(PHRASES.silenceGoodbye, 'silence');
      return;
    }
    this.send({ type: 'silence', durationMs: this.s.silenceMs });
    this.armSilence(); // the server's reprompt clears this timer when it arrives
  }

  // -- leaving the dialog -----------------------------------------------------

  onEnd(m) {
    if (this.mode !== 'dialog') return;
    this.closeWith(String(m.text || ''), m.reason ? String(m.reason) : 'end');
  }

  // Says the text after what is already queued, then hangs up.
  closeWith(text, reason) {
    this.mode = 'closing';
    this.clearTimer('silence');
    this.clearTimer('hold');
    this.afterSpeech = () => this.finish(reason, true);
    this.say(text, 'closing');
  }

  onTransfer(m) {
    if (this.mode !== 'dialog') return;
    const to = m.to ? String(m.to) : this.s.operatorPhone;
    if (!to) {
      this.closeWith(PHRASES.noOperator, 'no_operator');
      return;
    }
    this.transferTo(to, m.text ? String(m.text) : PHRASES.transfer);
  }

  transferTo(to, text) {
    this.mode = 'transfer';
    this.clearTimer('silence');
    this.clearTimer('hold');
    this.afterSpeech = () => this.dial(to);
    this.say(text, 'closing');
  }

  dial(to) {
    if (this.mode !== 'transfer') return;
    this.stopVad();
    this.stopAsr();
    const callerId = this.s.callerId || this.alerting.destination || this.call.number();
    let out;
    try {
      out = /^sips?:/i.test(to) ? VoxEngine.callSIP(to, { callerid: callerId }) : VoxEngine.callPSTN(to, callerId);
    } catch (err) {
      this.transferFailed('cannot dial: ' + err);
      return;
    }
    this.outCall = out;
    out.addEventListener(CallEvents.Ringing, () => {
      if (this.outCall === out && this.mode === 'transfer') this.call.playProgressTone('RU');
    });
    out.addEventListener(CallEvents.Connected, () => {
      if (this.outCall !== out || this.mode !== 'transfer') return;
      this.clearTimer('ring');
      this.mode = 'bridged';
      VoxEngine.sendMediaBetween(this.call, out);
      this.finishServer('transferred');
    });
    out.addEventListener(CallEvents.Failed, (ev) => {
      if (this.outCall !== out) return;
      this.outCall = null;
      this.clearTimer('ring');
      this.transferFailed(ev.code + ' ' + ev.reason);
    });
    out.addEventListener(CallEvents.Disconnected, () => {
      if (this.outCall !== out) return;
      this.outCall = null;
      this.finish('operator_hangup', true);
    });
    // Hanging up an unanswered leg fails it: the Failed handler then says sorry.
    this.setTimer('ring', this.s.transferRingMs, () => {
      if (this.outCall === out && this.mode === 'transfer') out.hangup();
    });
  }

  transferFailed(why) {
    if (this.mode !== 'transfer') return;
    Logger.write('metrotest: transfer failed: ' + why);
    this.closeWith(PHRASES.transferFailed, 'transfer_failed');
  }

  // The end of the call, whoever ends it; runs once.
  finish(reason, hangUpCaller) {
    if (this.mode === 'ended') return;
    const wasStarting = this.mode === 'starting';
    this.mode = 'ended';
    this.clearTimers();
    this.afterSpeech = null;
    this.queue = [];
    this.stopPlayer();
    this.stopVad();
    this.stopAsr();
    if (this.outCall) {
      const out = this.outCall;
      this.outCall = null;
      try { out.hangup(); } catch (err) { /* already gone */ }
    }
    if (hangUpCaller && !wasStarting) {
      try { this.call.hangup(); } catch (err) { /* already gone */ }
    }
    this.finishServer(reason, () => this.terminate());
  }

  terminate() {
    if (this.terminated) return;
    this.terminated = true;
    VoxEngine.terminate();
  }
}
