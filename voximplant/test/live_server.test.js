'use strict';
/**
 * The scenario in the emulator against the real server, which
 * tests/test_voximplant.py starts (gunicorn, gevent worker) and points us at:
 *   SERVER_URL      ws://127.0.0.1:PORT/voice/ws
 *   TOKEN           its VOICE_TOKEN
 *   OPERATOR_PHONE  the server's OPERATOR_PHONE (also the scenario's fallback number)
 *   RESULTS_FILE    where to write call ids and frames for the call-log checks in Python
 * Without SERVER_URL the tests are skipped (the pytest wrapper always sets it).
 */
const fs = require('node:fs');
const test = require('node:test');
const assert = require('node:assert/strict');
const {
  FAST, closedPort, makeEmulator, CuttableProxy, assertClean, ended,
} = require('./support');

const SERVER_URL = process.env.SERVER_URL;
const TOKEN = process.env.TOKEN;
const OPERATOR = process.env.OPERATOR_PHONE || '+73430001212';
const skip = SERVER_URL ? false : 'SERVER_URL is not set: run through tests/test_voximplant.py';

// The first greeting may wait for the answer engine to load.
const LIVE = { ...FAST, connectTimeoutMs: 20000 };
const WAIT = { timeout: 30000 };

// A question the KB knows about, so the answer comes from the (test) LLM in several sentences.
const QUESTION = 'сколько стоит разрывная машина';

const results = {};
test.after(() => {
  if (process.env.RESULTS_FILE) fs.writeFileSync(process.env.RESULTS_FILE, JSON.stringify(results, null, 2));
});

function newCall(o = {}) {
  return makeEmulator({ serverUrl: o.serverUrl || SERVER_URL, token: TOKEN, operatorPhone: OPERATOR, pstn: o.pstn });
}

/** Text frames of one answer, in seq order. */
function pieces(emu, answerId) {
  return emu.received('text').filter((f) => f.answerId === answerId).sort((a, b) => a.seq - b.seq);
}

/** Waits for an answer's last frame and, if not interrupted, for its last piece to be spoken. */
async function answerSpoken(emu, answerId) {
  const ofAnswer = (e) => e.frame && e.frame.type === 'text' && e.frame.answerId === answerId;
  const first = await emu.waitFor('ws.received', ofAnswer, WAIT);
  await emu.waitFor('ws.received', (e) => ofAnswer(e) && e.frame.last, WAIT);
  const texts = pieces(emu, answerId).map((f) => f.text).filter((t) => t.trim());
  // From this answer's first frame on: another answer may have spoken the same sentence before.
  if (texts.length) await emu.waitFor('tts.finished', (e) => e.text === texts.at(-1), { ...WAIT, fromSeq: first.seq });
  return texts;
}

/** The id of the first answer that starts after event `seq`. */
async function nextAnswerId(emu, seq) {
  const e = await emu.waitFor('ws.received', (x) => x.seq > seq && x.frame && x.frame.type === 'text' && x.frame.answerId !== 'greeting', WAIT);
  return e.frame.answerId;
}

async function greeted(emu) {
  return answerSpoken(emu, 'greeting');
}

test('the greeting is spoken, piece by piece, in order', { skip }, async () => {
  const emu = newCall();
  try {
    const caller = emu.start({ customData: LIVE });
    const texts = await greeted(emu);
    assert.ok(texts.length >= 1, 'the greeting has text');
    assert.deepEqual(pieces(emu, 'greeting').map((f) => f.seq), pieces(emu, 'greeting').map((_, i) => i));
    assert.deepEqual(emu.spoken(), texts);
    assert.match(texts.join(' '), /Метротест/);
    results.greeting = { callId: caller.call.id(), texts };
    caller.hangup();
    await ended(emu);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('a question is answered with pieces spoken in order', { skip }, async () => {
  const emu = newCall();
  try {
    const caller = emu.start({ customData: LIVE });
    await greeted(emu);
    const before = emu.events.length;
    await caller.say(QUESTION);
    const answerId = await nextAnswerId(emu, before);
    const texts = await answerSpoken(emu, answerId);
    assert.ok(texts.length >= 2, 'the answer comes in pieces');
    assert.deepEqual(emu.spoken().slice(-texts.length), texts);
    assert.deepEqual(pieces(emu, answerId).map((f) => f.seq), pieces(emu, answerId).map((_, i) => i));
    assert.equal(emu.sent('interrupt').length, 0);
    results.question = { callId: caller.call.id(), question: QUESTION, answerId, texts };
    caller.hangup();
    await ended(emu);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('barge-in mid-answer: the player stops, interrupt carries the played text', { skip }, async () => {
  const emu = newCall();
  try {
    const caller = emu.start({ customData: LIVE });
    await greeted(emu);
    const before = emu.events.length;
    // Speak over the second piece of the answer: the first one has been heard in full.
    let secondPiece = null;
    emu.when('tts.started', (e) => {
      const frame = emu.received('text').find((f) => f.text === e.text && f.answerId !== 'greeting');
      return !!frame && frame.seq >= 1;
    }, (e) => {
      secondPiece = e.text;
      caller.say('подождите а сколько стоит доставка');
    });
    await caller.say(QUESTION);
    const answerId = await nextAnswerId(emu, before);
    const interrupt = await emu.waitFor('ws.sent', (e) => e.frame && e.frame.type === 'interrupt', WAIT);
    assert.ok(secondPiece, `the answer to "${QUESTION}" has a second piece`);
    const stopped = await emu.waitFor('tts.stopped', (e) => e.text === secondPiece, WAIT);
    assert.equal(stopped.heard, true);
    assert.equal(interrupt.frame.answerId, answerId);
    const heardBefore = pieces(emu, answerId).filter((f) => f.text.trim() && emu.find('tts.finished', (x) => x.text === f.text && x.seq < stopped.seq));
    assert.ok(heardBefore.length >= 1);
    assert.equal(interrupt.frame.utteranceUntilInterrupt, heardBefore.map((f) => f.text).join(' '));
    assert.ok(interrupt.frame.durationUntilInterruptMs > 0);
    // The caller's words are the next question, and it gets its own answer.
    const newAnswerId = await nextAnswerId(emu, interrupt.seq);
    assert.notEqual(newAnswerId, answerId);
    const newTexts = await answerSpoken(emu, newAnswerId);
    // After the stop only the new answer is spoken, piece for piece. (Compared as a sequence: the local
    // LLM streams the same sentences for every question, so a text alone does not tell the answers apart.)
    assert.deepEqual(emu.filter('tts.created', (e) => e.seq > stopped.seq).map((e) => e.text), newTexts,
      'nothing more of the interrupted answer is spoken');
    results.barge_in = {
      callId: caller.call.id(), answerId, utterance: interrupt.frame.utteranceUntilInterrupt, question: QUESTION,
    };
    caller.hangup();
    await ended(emu);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('barge-in over the greeting: interrupt carries the greeting pieces heard', { skip }, async () => {
  const emu = newCall();
  try {
    let caller = null;
    // Speak over the greeting's second piece: its first one has been heard in full.
    let secondPiece = null;
    emu.when('tts.started', (e) => {
      const frame = pieces(emu, 'greeting').find((f) => f.text === e.text);
      return !!frame && frame.seq >= 1;
    }, (e) => {
      secondPiece = e.text;
      caller.say('скажите сколько стоит доставка');
    });
    caller = emu.start({ customData: LIVE });
    const interrupt = await emu.waitFor('ws.sent', (e) => e.frame && e.frame.type === 'interrupt', WAIT);
    assert.equal(interrupt.frame.answerId, 'greeting');
    assert.ok(secondPiece, 'the greeting comes in more than one piece');
    const stopped = await emu.waitFor('tts.stopped', (e) => e.text === secondPiece, WAIT);
    const heardBefore = pieces(emu, 'greeting').filter((f) => emu.find('tts.finished', (x) => x.text === f.text && x.seq < stopped.seq));
    assert.ok(heardBefore.length >= 1);
    assert.equal(interrupt.frame.utteranceUntilInterrupt, heardBefore.map((f) => f.text).join(' '));
    // The caller's words are answered.
    const answerId = await nextAnswerId(emu, interrupt.seq);
    await answerSpoken(emu, answerId);
    results.greeting_barge_in = { callId: caller.call.id(), utterance: interrupt.frame.utteranceUntilInterrupt };
    caller.hangup();
    await ended(emu);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('a cough over the bot does not interrupt it', { skip }, async () => {
  const emu = newCall();
  try {
    const caller = emu.start({ customData: LIVE });
    const first = await emu.waitFor('ws.received', (e) => e.frame && e.frame.type === 'text' && e.frame.answerId === 'greeting' && e.frame.text.trim(), WAIT);
    emu.when('tts.started', (e) => e.text === first.frame.text, () => caller.cough());
    const texts = await greeted(emu);
    assert.deepEqual(emu.spoken(), texts, 'the whole greeting is heard');
    assert.ok(emu.find('caller.cough'));
    assert.equal(emu.filter('tts.stopped').length, 0);
    assert.deepEqual(emu.sent('interrupt'), []);
    assert.deepEqual(emu.sent('prompt'), []);
    caller.hangup();
    await ended(emu);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

async function expectTransfer(emu) {
  const frame = await emu.waitFor('ws.received', (e) => e.frame && e.frame.type === 'transfer', WAIT);
  assert.equal(frame.frame.to, OPERATOR);
  const bridged = await emu.waitFor('media.bridged', () => true, WAIT);
  const dial = emu.find('pstn.dial');
  assert.equal(dial.number, OPERATOR);
  if (frame.frame.text) assert.ok(emu.find('tts.finished', (e) => e.text === frame.frame.text && e.seq < dial.seq), 'the transfer text is said first');
  await emu.waitFor('ws.closed', () => true, WAIT);
  assert.deepEqual(emu.sent('hangup'), [{ type: 'hangup', reason: 'transferred' }]);
  return bridged;
}

test('key 0 transfers the caller to the operator', { skip }, async () => {
  const emu = newCall();
  try {
    const caller = emu.start({ customData: LIVE });
    await greeted(emu);
    caller.press('0');
    await expectTransfer(emu);
    results.transfer_key = { callId: caller.call.id() };
    emu.operatorHangup();
    await ended(emu);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('asking for a person transfers the caller to the operator', { skip }, async () => {
  const emu = newCall();
  try {
    const caller = emu.start({ customData: LIVE });
    await greeted(emu);
    await caller.say('соедините меня с оператором пожалуйста');
    await expectTransfer(emu);
    results.transfer_spoken = { callId: caller.call.id() };
    caller.hangup();
    await ended(emu);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('a transfer nobody answers ends politely', { skip }, async () => {
  const emu = newCall({ pstn: { [OPERATOR]: { ring: true } } });
  try {
    const caller = emu.start({ customData: LIVE });
    await greeted(emu);
    caller.press('0');
    await emu.waitFor('ws.received', (e) => e.frame && e.frame.type === 'transfer', WAIT);
    await ended(emu, 30000);
    assert.match(emu.spoken().at(-1), /никто из сотрудников не может ответить.*до свидания/i);
    assert.ok(emu.find('call.hangup', (e) => e.call === caller.call.id()));
    assert.equal(emu.find('media.bridged'), undefined);
    assert.deepEqual(emu.sent('hangup'), [{ type: 'hangup', reason: 'transfer_failed' }]);
    results.transfer_no_answer = { callId: caller.call.id() };
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('the caller hanging up ends the call once', { skip }, async () => {
  const emu = newCall();
  try {
    const caller = emu.start({ customData: LIVE });
    await greeted(emu);
    caller.hangup();
    await ended(emu);
    assert.deepEqual(emu.sent('hangup'), [{ type: 'hangup', reason: 'caller_hangup' }]);
    assert.equal(emu.filter('terminate').length, 1);
    results.caller_hangup = { callId: caller.call.id() };
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('server down at connect: the apology is spoken and the transfer happens', { skip }, async () => {
  const port = await closedPort();
  const emu = newCall({ serverUrl: `ws://127.0.0.1:${port}/voice/ws` });
  try {
    const caller = emu.start({ customData: LIVE });
    await emu.waitFor('media.bridged', () => true, WAIT);
    assert.match(emu.spoken()[0], /^Извините, у нас техническая неполадка\. Соединяю вас с сотрудником/);
    assert.equal(emu.find('pstn.dial').number, OPERATOR);
    caller.hangup();
    await ended(emu);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});

test('the server dropping mid-call: the apology is spoken and the transfer happens', { skip }, async () => {
  const proxy = await new CuttableProxy(SERVER_URL).start();
  const emu = newCall({ serverUrl: proxy.url });
  try {
    const caller = emu.start({ customData: LIVE });
    await greeted(emu);
    const setup = emu.sent('setup')[0];
    proxy.cut();
    await emu.waitFor('media.bridged', () => true, WAIT);
    assert.equal(emu.find('ws.closed').wasClean, false);
    assert.match(emu.spoken().at(-1), /^Извините, у нас техническая неполадка\. Соединяю вас с сотрудником/);
    assert.equal(emu.find('pstn.dial').number, OPERATOR);
    results.dropped = { callId: setup.callId };
    caller.hangup();
    await ended(emu);
    assertClean(assert, emu);
  } finally {
    emu.dispose();
    await proxy.stop();
  }
});

test('silence: the server\'s reprompt from its settings, then its goodbye', { skip }, async () => {
  const emu = newCall();
  try {
    const caller = emu.start({ customData: { ...LIVE, silenceMs: 300 } });
    const greeting = await greeted(emu);
    await ended(emu);
    // The panel's phrases (set by tests/test_voximplant.py), spoken as the server sent them
    // (the reprompt a sentence a piece, as every phrase).
    assert.deepEqual(emu.spoken().slice(0, greeting.length), greeting);
    assert.equal(emu.spoken().slice(greeting.length).join(' '), `${process.env.REPROMPT} ${process.env.GOODBYE}`);
    assert.equal(emu.sent('silence').length, 2);
    assert.ok(emu.find('call.hangup', (e) => e.call === caller.call.id()));
    assert.deepEqual(emu.sent('hangup'), [{ type: 'hangup', reason: 'silence' }]);
    results.silence = { callId: caller.call.id() };
    assertClean(assert, emu);
  } finally {
    emu.dispose();
  }
});
