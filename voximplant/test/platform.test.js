'use strict';
/**
 * The scenario on today's platform (issue #14, part 4): barge-in from Silero voice activity detection
 * with the ASR rules as the fallback, progressive playback for the voices that have it, the call
 * recording's link sent as `recording`; and the emulator refusing misuse of those APIs as the typings
 * declare them (typings/voxengine.d.ts in voximplant/voxengine-ci, VoxEngine 7.57.0).
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Emulator } = require('../emulator');
const { FAST, makeEmulator, FakeServer, assertClean, ended, eventually, LONG, withCall } = require('./support');


// A voice over the bot with no words from the ASR for a long while (a long «э-э-э», or an ASR slow
// with interim results): only voice activity can tell the scenario the caller is speaking.
const WORDLESS = { wordMs: 20000, interim: false };

// -- barge-in from voice activity --------------------------------------------------------------------

test('VAD barge-in: a voice the VAD hears over the bot stops the player and interrupt reports what was played', async () => {
  // The ASR's own hold rule is set out of reach: only the VAD can interrupt here.
  await withCall({ answer: () => LONG }, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: { ...FAST, bargeInHoldMs: 60000 } });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    const created = emu.find('vad.created');
    assert.ok(created, 'Silero.createVAD was called');
    assert.deepEqual(created.parameters, { threshold: 0.5, minSilenceDurationMs: 150 });
    assert.ok(emu.find('vad.attached', (e) => e.call === caller.call.id()), 'the caller is sent to the VAD');
    emu.when('tts.started', (e) => e.text === LONG[1], () => caller.say('ээээ', WORDLESS));
    await caller.say('расскажите про машины');
    const interrupt = await emu.waitFor('ws.sent', (e) => e.frame.type === 'interrupt');
    const stopped = emu.find('tts.stopped', (e) => e.text === LONG[1]);
    assert.ok(stopped, 'the piece being spoken was stopped');
    assert.equal(stopped.heard, true);
    assert.ok(stopped.fraction < 1);
    assert.equal(interrupt.frame.answerId, 'a1');
    assert.equal(interrupt.frame.utteranceUntilInterrupt, LONG[0]);
    assert.ok(interrupt.frame.durationUntilInterruptMs > 0);
    assert.ok(emu.find('log', (e) => /barge-in \(voice \(VAD\)\)/.test(e.message)));
    assert.equal(emu.find('asr.created').interimDelivered, true);
    assert.equal(emu.filter('ws.sent', (e) => e.frame.type === 'interrupt').length, 1);
    // Nothing more of the interrupted answer is started.
    assert.equal(emu.filter('tts.created', (e) => e.seq > stopped.seq && e.text === LONG[2]).length, 0);
    await eventually(() => server.of('interrupt').length === 1, { what: 'interrupt at the server' });
    assertClean(assert, emu);
  });
});

test('VAD barge-in with bargeInVadMs 0 interrupts as soon as the voice starts', async () => {
  await withCall({ answer: () => LONG }, {}, async ({ emu }) => {
    const caller = emu.start({ customData: { ...FAST, bargeInHoldMs: 60000, bargeInVadMs: 0 } });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    let startedAt = null;
    emu.when('tts.started', (e) => e.text === LONG[0], () => {
      startedAt = Date.now();
      caller.say('ээээ', WORDLESS);
    });
    await caller.say('расскажите про машины');
    const interrupt = await emu.waitFor('ws.sent', (e) => e.frame.type === 'interrupt');
    assert.ok(startedAt);
    assert.equal(interrupt.frame.utteranceUntilInterrupt, '');
    assert.ok(emu.find('tts.stopped', (e) => e.text === LONG[0]));
    assertClean(assert, emu);
  });
});

test('a short sound the VAD hears over the bot (an «угу») ends before bargeInVadMs and does not interrupt', async () => {
  await withCall({ answer: () => LONG }, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: { ...FAST, bargeInHoldMs: 60000 } });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    emu.when('tts.started', (e) => e.text === LONG[0], () => caller.cough({ text: '', vad: true, lengthMs: 200 }));
    emu.when('tts.started', (e) => e.text === LONG[1], () => caller.cough({ text: 'угу', vad: true, lengthMs: 250 }));
    await caller.say('расскажите про машины');
    await emu.waitFor('tts.finished', (e) => e.text === LONG[2]);
    assert.deepEqual(emu.spoken().slice(-3), LONG);
    assert.equal(emu.filter('tts.stopped').length, 0);
    assert.equal(server.of('interrupt').length, 0);
    assertClean(assert, emu);
  });
});

test('without Silero (no module, createVAD failing, bargeInVad off) barge-in falls back to the ASR rules', async () => {
  const cases = [
    { name: 'no module', emuOpts: { silero: false }, custom: {}, log: /no Silero VAD on this platform/ },
    { name: 'createVAD rejects', emuOpts: { sileroError: 'connector unavailable' }, custom: {}, log: /Silero VAD not created .*connector unavailable/ },
    { name: 'bargeInVad off', emuOpts: {}, custom: { bargeInVad: false }, log: null },
  ];
  for (const c of cases) {
    // Interim words interrupt.
    await withCall({ answer: () => LONG }, c.emuOpts, async ({ server, emu }) => {
      const caller = emu.start({ customData: { ...FAST, ...c.custom } });
      await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
      emu.when('tts.started', (e) => e.text === LONG[1], () => caller.say('подождите а сколько стоит доставка'));
      await caller.say('расскажите про машины');
      const interrupt = await emu.waitFor('ws.sent', (e) => e.frame.type === 'interrupt');
      assert.equal(interrupt.frame.utteranceUntilInterrupt, LONG[0], c.name);
      assert.equal(emu.find('vad.attached'), undefined, c.name);
      if (c.log) assert.ok(emu.find('log', (e) => c.log.test(e.message)), `${c.name}: logged`);
      assert.ok(emu.find('log', (e) => /barge-in \(words\)/.test(e.message)), c.name);
      await eventually(() => server.of('interrupt').length === 1, { what: 'interrupt at the server' });
      assertClean(assert, emu);
    });
    // And a voice the ASR hears held for bargeInHoldMs interrupts without words.
    await withCall({ answer: () => LONG }, c.emuOpts, async ({ emu }) => {
      const caller = emu.start({ customData: { ...FAST, ...c.custom, bargeInHoldMs: 30 } });
      await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
      emu.when('tts.started', (e) => e.text === LONG[0], () => caller.say('ээээ', WORDLESS));
      await caller.say('расскажите про машины');
      await emu.waitFor('ws.sent', (e) => e.frame.type === 'interrupt');
      assert.ok(emu.find('log', (e) => /barge-in \(voice held\)/.test(e.message)), c.name);
      assertClean(assert, emu);
    });
  }
});

test('a VAD error mid-call: the VAD is released and the ASR hold rule takes over', async () => {
  await withCall({ answer: () => LONG }, {}, async ({ emu }) => {
    const caller = emu.start({ customData: { ...FAST, bargeInHoldMs: 30, bargeInVadMs: 60000 } });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    emu.vadError('connector lost');
    await emu.waitFor('vad.closed');
    assert.ok(emu.find('vad.detached'));
    assert.ok(emu.find('log', (e) => /Silero VAD error: connector lost, barge-in from the ASR/.test(e.message)));
    emu.when('tts.started', (e) => e.text === LONG[0], () => caller.say('ээээ', WORDLESS));
    await caller.say('расскажите про машины');
    await emu.waitFor('ws.sent', (e) => e.frame.type === 'interrupt');
    assert.ok(emu.find('log', (e) => /barge-in \(voice held\)/.test(e.message)));
    assertClean(assert, emu);
  });
});

test('the VAD is released when the call ends', async () => {
  await withCall({}, {}, async ({ emu }) => {
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('vad.attached');
    caller.hangup();
    await ended(emu);
    assert.ok(emu.find('vad.closed'));
    assertClean(assert, emu);
  });
});

// -- progressive playback ------------------------------------------------------------------------------

test('progressivePlayback is passed to the TTS for the Russian voices that support it', async () => {
  const voices = ['Yandex.Neural.ru_RU_alena', 'TBank.ru_RU_Anna', 'SaluteSpeech.ru_RU_natalia', 'Microsoft.Neural.ru_RU_SvetlanaNeural'];
  for (const voice of voices) {
    await withCall({}, {}, async ({ emu }) => {
      emu.start({ customData: { ...FAST, voice } });
      await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
      const created = emu.filter('tts.created');
      assert.ok(created.length >= 2);
      for (const e of created) {
        assert.equal(e.voice, `VoiceList.${voice}`);
        assert.deepEqual(e.options, { voice: `VoiceList.${voice}`, progressivePlayback: true }, voice);
      }
      assertClean(assert, emu);
    });
  }
});

test('progressivePlayback is left out for YandexV3 voices, which lack it, and when the setting is off', async () => {
  for (const custom of [{ voice: 'YandexV3.ru_RU_alena' }, { progressivePlayback: false }]) {
    await withCall({}, {}, async ({ emu }) => {
      emu.start({ customData: { ...FAST, ...custom } });
      await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
      for (const e of emu.filter('tts.created')) assert.equal('progressivePlayback' in e.options, false, JSON.stringify(custom));
      assertClean(assert, emu); // a progressive YandexV3 player would be a violation
    });
  }
});

test('boolean settings come from storage as text: "false" turns progressive playback off', async () => {
  await withCall({}, { storage: { 'metrotest:progressivePlayback': 'false', 'metrotest:record': 'off' } }, async ({ server, emu }) => {
    emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    for (const e of emu.filter('tts.created')) assert.equal(e.options.progressivePlayback, undefined);
    assert.equal(emu.find('call.record'), undefined);
    assert.equal(server.of('recording').length, 0);
    assertClean(assert, emu);
  });
});

// -- recording -------------------------------------------------------------------------------------------

test('the call is recorded from the start and the recording frame carries the URL RecordStarted gave', async () => {
  await withCall({}, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: FAST });
    await eventually(() => server.of('recording').length, { what: 'recording at the server' });
    const record = emu.find('call.record');
    assert.equal(record.stereo, true);
    assert.ok(record.seq < emu.find('ws.connecting').seq, 'recording starts before the server is reached');
    const url = `https://records.voximplant.test/${caller.call.id()}.mp3`;
    assert.deepEqual(server.of('recording'), [{ type: 'recording', url }]);
    // setup first, as the protocol wants, even when the platform reports the recording before the socket opens
    assert.equal(server.frames[0].type, 'setup');
    caller.hangup();
    await ended(emu);
    assertClean(assert, emu);
  });
});

test('record off: no recording is started and no recording frame is sent', async () => {
  await withCall({}, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: { ...FAST, record: false } });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    caller.hangup();
    await ended(emu);
    assert.equal(emu.find('call.record'), undefined);
    assert.equal(server.of('recording').length, 0);
    assertClean(assert, emu);
  });
});

// -- the emulator refuses misuse, as the typings would --------------------------------------------------

/**
 * Runs a throwaway scenario whose CallAlerting handler is `body`; returns what went wrong: what the
 * emulator threw at the scenario (caught here, as a real scenario's uncaught error would end the
 * session) and the misuse it recorded.
 */
async function misuse(body, emuOpts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vox-misuse-'));
  const file = path.join(dir, 'scenario.js');
  fs.writeFileSync(file, [
    'require(Modules.ASR);',
    'VoxEngine.addEventListener(AppEvents.CallAlerting, (e) => {',
    '  (async () => {',
    body,
    "  })().catch((err) => Logger.write('THROWN: ' + err));",
    '});',
  ].join('\n'));
  const emu = new Emulator({ scenario: file, timeScale: 0.02, ...emuOpts });
  try {
    emu.start();
    await new Promise((r) => setTimeout(r, 150));
    const thrown = emu.filter('log', (e) => e.message.startsWith('THROWN: ')).map((e) => e.message);
    return [...thrown, ...emu.problems().map((p) => p.message)].join('\n');
  } finally {
    emu.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the emulator refuses misuse of the TTS, Silero and record APIs', async () => {
  const cases = [
    ["VoxEngine.createTTSPlayer('а', { voice: VoiceList.Yandex.Neural.ru_RU_alena, progressive: true });", /unknown option progressive/],
    ["VoxEngine.createTTSPlayer('а', { voice: VoiceList.Yandex.Neural.ru_RU_alena, progressivePlayback: 'yes' });", /progressivePlayback must be a boolean/],
    ["VoxEngine.createTTSPlayer('а', { voice: VoiceList.YandexV3.ru_RU_alena, progressivePlayback: true });", /progressivePlayback is not available for YandexV3/],
    ['await Silero.createVAD({});', /Silero is not defined/],
    ['require(Modules.Silero); await Silero.createVAD({ threshold: 0.5, minSilenceMs: 100 });', /unknown option minSilenceMs/],
    ["require(Modules.Silero); await Silero.createVAD({ threshold: '0.5' });", /threshold must be a number/],
    ['require(Modules.Silero); await Silero.createVAD({ threshold: 5 });', /threshold must be within 0..1/],
    ['require(Modules.Silero); const vad = await Silero.createVAD({}); vad.addEventListener(Silero.VADEvents.SpeechStarted, () => {});', /unknown event undefined/],
    ['require(Modules.Silero); const vad = await Silero.createVAD({}); vad.stop();', /vad.stop is not a function/],
    ['e.call.answer(); await new Promise((r) => setTimeout(r, 50)); e.call.record({ stereo: "yes" });', /stereo must be a boolean/],
    ['e.call.answer(); await new Promise((r) => setTimeout(r, 50)); e.call.record({ stereo: true, mp3: true });', /unknown option mp3/],
    ['e.call.answer(); await new Promise((r) => setTimeout(r, 50)); e.call.record();', /parameters are required/],
  ];
  for (const [body, expected] of cases) {
    const problems = await misuse(body);
    assert.match(problems, expected, body);
  }
  // A platform without the module: Modules.Silero is undefined and require refuses it.
  assert.match(await misuse('require(Modules.Silero);', { silero: false }), /require: unknown module undefined/);
  // Proper use is clean.
  const clean = await misuse([
    'require(Modules.Silero);',
    "const vad = await Silero.createVAD({ threshold: 0.5, minSilenceDurationMs: 150, speechPadMs: 0 });",
    'vad.addEventListener(Silero.VADEvents.Result, () => {});',
    'e.call.answer(); await new Promise((r) => setTimeout(r, 50));',
    'e.call.sendMediaTo(vad); e.call.record({ stereo: true });',
    "VoxEngine.createTTSPlayer('а', { voice: VoiceList.Yandex.Neural.ru_RU_alena, progressivePlayback: true }).sendMediaTo(e.call);",
    'e.call.stopMediaTo(vad); vad.close(); vad.id(); vad.webSocketId();',
  ].join('\n'));
  assert.equal(clean, '');
});
