'use strict';
/**
 * The scenario against a scripted stand-in for the server: the protocol as
 * PROTOCOL.md words it, and the scenario's own behaviour (barge-in rules,
 * silence, fallbacks, settings). live_server.test.js runs the same call flows
 * against the real server.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const {
  OPERATOR, FAST, REPROMPT, GOODBYE, closedPort, makeEmulator, FakeServer, CuttableProxy, assertClean, ended, eventually,
  LONG, withCall,
} = require('./support');


test('setup goes first, with the call ids; recording follows; the greeting is spoken in order', async () => {
  await withCall({}, {}, async ({ server, emu }) => {
    const caller = emu.start({ callerid: '+79120000001', destination: '+73430000000', customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    await eventually(() => server.of('recording').length, { what: 'recording at the server' });
    assert.equal(server.frames[0].type, 'setup');
    assert.deepEqual(server.frames[0], {
      type: 'setup', callId: caller.call.id(), from: '+79120000001', to: '+73430000000', sessionId: emu.sessionId,
    });
    assert.match(server.of('recording')[0].url, /^https:\/\//);
    assert.deepEqual(emu.spoken(), server.greeting);
    assert.equal(emu.find('ws.open').protocol, 'chat');
    assert.equal(emu.find('call.record').stereo, true);
    const asr = emu.find('asr.created');
    assert.equal(asr.profile, 'ASRProfileList.Yandex.ru_RU');
    assert.equal(asr.interimDelivered, true);
    assert.equal(emu.find('tts.created').voice, 'VoiceList.Yandex.Neural.ru_RU_alena');
    assertClean(assert, emu);
  });
});

test('a final result becomes a prompt; the answer is spoken piece by piece, one player at a time', async () => {
  await withCall({ answer: () => LONG }, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    await caller.say('какие у вас есть машины', { confidence: 0.87 });
    await emu.waitFor('tts.finished', (e) => e.text === LONG[2]);
    assert.deepEqual(server.of('prompt'), [{ type: 'prompt', text: 'какие у вас есть машины', confidence: 0.87, last: true }]);
    assert.deepEqual(emu.spoken().slice(-3), LONG);
    assert.equal(server.of('interrupt').length, 0);
    assertClean(assert, emu); // includes "two players on one call"
  });
});

test('barge-in: two interim words over the bot stop the player, drop the rest and report what was played', async () => {
  await withCall({ answer: () => LONG }, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    let spokeAt = null;
    emu.when('tts.started', (e) => e.text === LONG[1], () => {
      spokeAt = Date.now();
      caller.say('подождите а сколько стоит доставка');
    });
    await caller.say('расскажите про машины');
    const interrupt = await emu.waitFor('ws.sent', (e) => e.frame.type === 'interrupt');
    const stopped = await emu.waitFor('tts.stopped', (e) => e.text === LONG[1]);
    assert.ok(spokeAt);
    assert.equal(stopped.heard, true);
    assert.ok(stopped.fraction < 1);
    assert.equal(interrupt.frame.answerId, 'a1');
    assert.equal(interrupt.frame.utteranceUntilInterrupt, LONG[0]);
    assert.ok(interrupt.frame.durationUntilInterruptMs > 0);
    // The caller's words then go to the server as the next prompt.
    await emu.waitFor('ws.sent', (e) => e.frame.type === 'prompt' && e.frame.text === 'подождите а сколько стоит доставка');
    await emu.waitFor('tts.finished', (e) => e.seq > stopped.seq && e.text === LONG[2]); // the answer to the new prompt
    assert.equal(emu.filter('tts.created', (e) => e.text === LONG[2] && e.seq < stopped.seq).length, 0, 'the dropped piece never started');
    assert.equal(server.of('interrupt').length, 1);
    assertClean(assert, emu);
  });
});

test('pieces of an interrupted answer that arrive late are not spoken', async () => {
  const late = 'Этот кусок пришёл после перебивания.';
  await withCall({ answer: () => LONG.slice(0, 2), pieceGapMs: 5 }, {}, async ({ server, emu }) => {
    server.onFrame = (frame, conn) => {
      if (frame.type === 'interrupt') {
        server.send(conn, { type: 'text', answerId: frame.answerId, seq: 7, text: late, last: true });
        return true;
      }
      return false;
    };
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    emu.when('tts.started', (e) => e.text === LONG[0], () => caller.say('стоп стоп подождите'));
    await caller.say('расскажите про машины');
    await emu.waitFor('ws.sent', (e) => e.frame.type === 'interrupt');
    await emu.waitFor('ws.received', (e) => e.frame.text === late);
    await emu.waitFor('tts.finished', (e) => e.text === LONG[1] && e.seq > emu.find('tts.stopped').seq);
    assert.equal(emu.find('tts.created', (e) => e.text === late), undefined);
    assert.equal(server.of('interrupt')[0].utteranceUntilInterrupt, '');
    assertClean(assert, emu);
  });
});

test('a cough or one word of noise over the bot does not interrupt and is not sent', async () => {
  await withCall({ answer: () => LONG }, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    emu.when('tts.started', (e) => e.text === LONG[0], () => caller.cough());
    emu.when('tts.started', (e) => e.text === LONG[1], () => caller.cough({ text: 'да' }));
    await caller.say('расскажите про машины');
    await emu.waitFor('tts.finished', (e) => e.text === LONG[2]);
    assert.deepEqual(emu.spoken().slice(-3), LONG);
    assert.equal(emu.filter('tts.stopped').length, 0);
    assert.equal(server.of('interrupt').length, 0);
    assert.deepEqual(server.of('prompt').map((f) => f.text), ['расскажите про машины']);
    assertClean(assert, emu);
  });
});

test('without the VAD, a voice the ASR hears held over the bot interrupts even before it has words', async () => {
  await withCall({ answer: () => LONG }, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: { ...FAST, bargeInHoldMs: 30, bargeInVad: false } });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    // A long breathy "э-э-э": no words for a while.
    emu.when('tts.started', (e) => e.text === LONG[0], () => caller.say('ээээ', { wordMs: 20000 }));
    await caller.say('расскажите про машины');
    const interrupt = await emu.waitFor('ws.sent', (e) => e.frame.type === 'interrupt');
    assert.equal(interrupt.frame.answerId, 'a1');
    assert.ok(emu.find('tts.stopped', (e) => e.text === LONG[0]));
    await eventually(() => server.of('interrupt').length === 1, { what: 'interrupt at the server' });
    assertClean(assert, emu);
  });
});

test('keys go to the server as dtmf; a key over the bot interrupts it', async () => {
  await withCall({ answer: () => LONG }, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.started', (e) => e.text === server.greeting[0]);
    caller.press('5');
    await eventually(() => server.of('dtmf').length, { what: 'dtmf at the server' });
    assert.deepEqual(server.of('dtmf'), [{ type: 'dtmf', digit: '5' }]);
    assert.deepEqual(server.of('interrupt').map((f) => f.answerId), ['greeting']);
    assertClean(assert, emu);
  });
});

test('transfer: the text is said, then the operator is dialled and bridged; the server gets hangup once', async () => {
  await withCall({}, {}, async ({ server, emu }) => {
    server.onFrame = (frame, conn) => {
      if (frame.type === 'dtmf' && frame.digit === '0') {
        server.send(conn, { type: 'transfer', to: OPERATOR, text: 'Соединяю с отделом продаж.' });
        return true;
      }
      return false;
    };
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    caller.press('0');
    const bridged = await emu.waitFor('media.bridged');
    const dial = emu.find('pstn.dial');
    assert.equal(dial.number, OPERATOR);
    assert.equal(dial.callerid, '+73430000000');
    assert.ok(emu.find('tts.finished', (e) => e.text === 'Соединяю с отделом продаж.').seq < dial.seq);
    assert.equal(bridged.a, caller.call.id());
    assert.ok(emu.find('asr.stopped'));
    await emu.waitFor('ws.closed');
    assert.deepEqual(server.of('hangup'), [{ type: 'hangup', reason: 'transferred' }]);
    // The call goes on between the two people until one hangs up.
    assert.equal(emu.find('terminate'), undefined);
    emu.operatorHangup();
    await ended(emu);
    assert.equal(emu.filter('terminate').length, 1);
    assert.ok(emu.find('call.hangup', (e) => e.call === caller.call.id()));
    assert.equal(server.of('hangup').length, 1);
    assertClean(assert, emu);
  });
});

test('a transfer nobody answers ends politely', async () => {
  await withCall({}, { pstn: { [OPERATOR]: { ring: true } } }, async ({ server, emu }) => {
    server.onFrame = (frame, conn) => {
      if (frame.type === 'dtmf') {
        server.send(conn, { type: 'transfer', to: OPERATOR });
        return true;
      }
      return false;
    };
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    caller.press('0');
    await ended(emu);
    const spoken = emu.spoken();
    assert.equal(spoken.at(-2), 'Соединяю вас с сотрудником, оставайтесь на линии.');
    assert.match(spoken.at(-1), /никто из сотрудников не может ответить.*до свидания/i);
    assert.ok(emu.find('call.progress_tone'), 'the caller hears ringing, not silence');
    assert.ok(emu.find('call.hangup', (e) => e.call === emu.outCall.id()), 'the unanswered leg is dropped');
    assert.ok(emu.find('call.hangup', (e) => e.call === caller.call.id()));
    assert.deepEqual(server.of('hangup'), [{ type: 'hangup', reason: 'transfer_failed' }]);
    assert.equal(emu.find('media.bridged'), undefined);
    assertClean(assert, emu);
  });
});

test('a transfer that fails at once (busy) ends politely too', async () => {
  await withCall({}, { pstn: { [OPERATOR]: { failAfterMs: 5, code: 486, reason: 'Busy Here' } } }, async ({ server, emu }) => {
    server.onFrame = (frame, conn) => {
      if (frame.type !== 'dtmf') return false;
      server.send(conn, { type: 'transfer', to: OPERATOR, text: 'Соединяю.' });
      return true;
    };
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    caller.press('0');
    await ended(emu);
    assert.match(emu.spoken().at(-1), /перезвоните нам позже/);
    assert.equal(emu.filter('terminate').length, 1);
    assertClean(assert, emu);
  });
});

test('end: the text is said after the queued pieces, then the call is hung up', async () => {
  await withCall({ answer: () => ['Пожалуйста.'] }, {}, async ({ server, emu }) => {
    server.onFrame = (frame, conn) => {
      if (frame.type === 'prompt') {
        server.send(conn, { type: 'text', answerId: 'a1', seq: 0, text: 'Рада была помочь.', last: true });
        server.send(conn, { type: 'end', reason: 'goodbye', text: 'Всего доброго, до свидания.' });
        return true;
      }
      return false;
    };
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    await caller.say('спасибо до свидания');
    await ended(emu);
    assert.deepEqual(emu.spoken().slice(-2), ['Рада была помочь.', 'Всего доброго, до свидания.']);
    assert.ok(emu.find('call.hangup', (e) => e.call === caller.call.id()));
    assert.deepEqual(server.of('hangup'), [{ type: 'hangup', reason: 'goodbye' }]);
    assert.equal(emu.filter('terminate').length, 1);
    assertClean(assert, emu);
  });
});

test('the caller hangs up mid-answer: hangup is sent once, the session ends once', async () => {
  await withCall({ answer: () => LONG }, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    emu.when('tts.started', (e) => e.text === LONG[1], () => caller.hangup());
    await caller.say('расскажите про машины');
    await ended(emu);
    assert.deepEqual(server.of('hangup'), [{ type: 'hangup', reason: 'caller_hangup' }]);
    assert.equal(emu.filter('terminate').length, 1);
    assert.ok(emu.find('tts.stopped', (e) => e.text === LONG[1]));
    assert.equal(emu.find('tts.created', (e) => e.text === LONG[2]), undefined);
    assertClean(assert, emu);
  });
});

test('server unreachable at connect: an apology, then the operator', async () => {
  const port = await closedPort();
  const emu = makeEmulator({ serverUrl: `ws://127.0.0.1:${port}/voice/ws`, token: 'x' });
  try {
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('media.bridged');
    assert.match(emu.spoken()[0], /^Извините, у нас техническая неполадка\. Соединяю вас с сотрудником/);
    assert.equal(emu.find('pstn.dial').number, OPERATOR);
    assert.equal(emu.find('caller.unheard'), undefined);
    caller.hangup();
    await ended(emu);
    assert.ok(emu.find('call.hangup', (e) => e.call === emu.outCall.id()));
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('server unreachable and no operator number: an apology and a request to call back', async () => {
  const port = await closedPort();
  const emu = makeEmulator({ serverUrl: `ws://127.0.0.1:${port}/voice/ws`, token: 'x', operatorPhone: '' });
  try {
    const caller = emu.start({ customData: FAST });
    await ended(emu);
    assert.deepEqual(emu.spoken(), ['Извините, у нас техническая неполадка. Пожалуйста, перезвоните нам немного позже. До свидания.']);
    assert.ok(emu.find('call.hangup', (e) => e.call === caller.call.id()));
    assert.equal(emu.find('pstn.dial'), undefined);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('a wrong token (close 1008) is handled like an unreachable server', async () => {
  await withCall({}, { token: 'wrong' }, async ({ server, emu }) => {
    emu.start({ customData: FAST });
    await emu.waitFor('media.bridged');
    assert.equal(emu.find('ws.closed').code, 1008);
    assert.match(emu.spoken()[0], /техническая неполадка/);
    assert.equal(server.frames.length, 0);
    assertClean(assert, emu);
  });
});

test('a server that accepts but never greets: the apology comes after connectTimeoutMs', async () => {
  await withCall({}, {}, async ({ server, emu }) => {
    server.onFrame = () => true; // swallows setup
    emu.start({ customData: { ...FAST, connectTimeoutMs: 200 } });
    await emu.waitFor('media.bridged');
    assert.match(emu.spoken()[0], /техническая неполадка/);
    assert.equal(server.of('setup').length, 1);
    assertClean(assert, emu);
  });
});

test('the socket dropping mid-answer: the bot stops, apologises and transfers', async () => {
  const server = await new FakeServer({ answer: () => LONG }).start();
  const proxy = await new CuttableProxy(server.url).start();
  const emu = makeEmulator({ serverUrl: proxy.url, token: server.token });
  try {
    const caller = emu.start({ customData: FAST });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    emu.when('tts.started', (e) => e.text === LONG[0], () => proxy.cut());
    await caller.say('расскажите про машины');
    await emu.waitFor('media.bridged');
    const closed = emu.find('ws.closed');
    assert.equal(closed.wasClean, false);
    assert.ok(emu.find('tts.stopped', (e) => e.text === LONG[0]));
    assert.match(emu.spoken().at(-1), /^Извините, у нас техническая неполадка\. Соединяю/);
    assert.equal(emu.find('pstn.dial').number, OPERATOR);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
    await proxy.stop();
    await server.stop();
  }
});

test('silence is reported: the server reprompts, then says its goodbye and ends the call', async () => {
  await withCall({}, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: { ...FAST, silenceMs: 150 } });
    await ended(emu);
    assert.deepEqual(emu.spoken().slice(-2), [REPROMPT, GOODBYE]);
    assert.deepEqual(server.of('silence'), [
      { type: 'silence', durationMs: 150 }, { type: 'silence', durationMs: 150 }]);
    assert.equal(emu.find('tts.created', (e) => /Вы меня слышите|Я вас не слышу/.test(e.text)), undefined,
      'the scenario spoke a silence phrase of its own');
    assert.ok(emu.find('call.hangup', (e) => e.call === caller.call.id()));
    assert.deepEqual(server.of('hangup'), [{ type: 'hangup', reason: 'silence' }]);
    assertClean(assert, emu);
  });
});

test('a server that never answers silence: the scenario says goodbye after a third stretch', async () => {
  await withCall({}, {}, async ({ server, emu }) => {
    server.onFrame = (frame) => frame.type === 'silence'; // swallowed: an older server
    const caller = emu.start({ customData: { ...FAST, silenceMs: 150 } });
    await ended(emu);
    assert.equal(server.of('silence').length, 2);
    assert.equal(emu.spoken().at(-1), 'Я вас не слышу. Перезвоните, пожалуйста, когда вам будет удобно. До свидания.');
    assert.ok(emu.find('call.hangup', (e) => e.call === caller.call.id()));
    assert.deepEqual(server.of('hangup'), [{ type: 'hangup', reason: 'silence' }]);
    assertClean(assert, emu);
  });
});

test('speech after the reprompt resets the count: no goodbye', async () => {
  await withCall({ answer: () => ['Конечно.'] }, {}, async ({ server, emu }) => {
    const caller = emu.start({ customData: { ...FAST, silenceMs: 200 } });
    await emu.waitFor('tts.finished', (e) => e.text === REPROMPT);
    await caller.say('да слышу');
    await emu.waitFor('tts.finished', (e) => e.text === 'Конечно.');
    await emu.waitFor('tts.finished', (e) => e.text === REPROMPT && e.seq > emu.find('tts.finished', (x) => x.text === 'Конечно.').seq);
    assert.equal(emu.find('tts.created', (e) => e.text === GOODBYE), undefined);
    caller.hangup();
    await ended(emu);
    assert.deepEqual(server.of('hangup'), [{ type: 'hangup', reason: 'caller_hangup' }]);
    assertClean(assert, emu);
  });
});

test('settings: application storage overrides the defaults, customData overrides storage', async () => {
  await withCall({}, { storage: { 'metrotest:voice': 'TBank.ru_RU_Anna', 'metrotest:asrProfile': 'TBank.ru_RU' } }, async ({ emu }) => {
    emu.start({ customData: { ...FAST, voice: 'SaluteSpeech.ru_RU_natalia' } });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    assert.equal(emu.find('asr.created').profile, 'ASRProfileList.TBank.ru_RU');
    assert.equal(emu.find('tts.created').voice, 'VoiceList.SaluteSpeech.ru_RU_natalia');
    assertClean(assert, emu);
  });
});

test('an unknown voice or profile falls back to the defaults; bad customData is ignored', async () => {
  await withCall({}, { storage: { 'metrotest:voice': 'Nope.nobody', 'metrotest:asrProfile': 'Nope.xx' } }, async ({ emu }) => {
    emu.start({ customData: '{not json' });
    await emu.waitFor('tts.finished', (e) => e.text === 'Чем могу помочь?');
    assert.equal(emu.find('asr.created').profile, 'ASRProfileList.Yandex.ru_RU');
    assert.equal(emu.find('tts.created').voice, 'VoiceList.Yandex.Neural.ru_RU_alena');
    assert.ok(emu.find('log', (e) => /customData is not JSON/.test(e.message)));
    assertClean(assert, emu);
  });
});

test('the emulator refuses customData over 200 bytes, as VoxEngine does', () => {
  const emu = makeEmulator({ serverUrl: 'ws://127.0.0.1:1/voice/ws', token: 'x' });
  try {
    assert.throws(() => emu.start({ customData: { serverUrl: 'x'.repeat(300) } }), /200/);
  } finally {
    emu.dispose();
  }
});
