'use strict';
/**
 * VoxEngine enums, with the names and string values of Voximplant's typings
 * (typings/voxengine.d.ts in voximplant/voxengine-ci; Silero and the TTS/record
 * parameters checked against the file's VoxEngine 7.57.0 version).
 * Only the members a scenario can meet in a phone call are listed; an
 * unknown name is undefined here, as a typo would be in VoxEngine.
 */

const AppEvents = Object.freeze({
  CallAlerting: 'Application.CallAlerting',
  Terminating: 'Application.Terminating',
  Terminated: 'Application.Terminated',
  Started: 'Application.Started',
  HttpRequest: 'Application.HttpRequest',
  WebSocket: 'AppEvents.NewWebSocketConnection',
  NewWebSocketFailed: 'Application.OnNewWebSocketFailed',
});

const CallEvents = Object.freeze({
  AudioStarted: 'Call.AudioStarted',
  BlindTransferRequested: 'Call.BlindTransferRequested',
  Connected: 'Call.Connected',
  Forwarding: 'Call.Forwarding',
  Disconnected: 'Call.Disconnected',
  Failed: 'Call.Failed',
  InfoReceived: 'Call.InfoReceived',
  MessageReceived: 'Call.MessageReceived',
  MicStatusChange: 'Call.MicStatusChange',
  OffHold: 'Call.OffHold',
  OnHold: 'Call.OnHold',
  PlaybackFinished: 'Call.PlaybackFinished',
  PlaybackReady: 'Call.PlaybackReady',
  PlaybackStarted: 'Call.PlaybackStarted',
  PushSent: 'Call.PushSent',
  ReInviteAccepted: 'Call.ReInviteAccepted',
  ReInviteReceived: 'Call.ReInviteReceived',
  ReInviteRejected: 'Call.ReInviteRejected',
  RecordError: 'Call.RecordError',
  RecordStarted: 'Call.RecordStarted',
  RecordStopped: 'Call.RecordStopped',
  Ringing: 'Call.Ringing',
  StateChanged: 'Call.StateChanged',
  Statistics: 'Call.Statistics',
  ToneDetected: 'Call.ToneDetected',
  ToneReceived: 'Call.ToneReceived',
  TransferComplete: 'Call.TransferComplete',
  TransferFailed: 'Call.TransferFailed',
  VideoTrackCreated: 'Call.Video.TrackCreated',
  FirstAudioPacketReceived: 'Call.FirstAudioPacketReceived',
  FirstVideoPacketReceived: 'Call.FirstVideoPacketReceived',
  RtpStopped: 'Call.RtpStopped',
  RtpResumed: 'Call.RtpResumed',
});

const ASREvents = Object.freeze({
  ASRError: 'ASR.Error',
  Started: 'ASR.Started',
  CaptureStarted: 'ASR.CaptureStarted',
  SpeechCaptured: 'ASR.SpeechCaptured',
  Result: 'ASR.Result',
  InterimResult: 'ASR.InterimResult',
  Stopped: 'ASR.Stopped',
});

const PlayerEvents = Object.freeze({
  Created: 'Player.Created',
  PlaybackReady: 'Player.PlaybackReady',
  Started: 'Player.Started',
  Stopped: 'Player.Stopped',
  PlaybackFinished: 'Player.PlaybackFinished',
  Error: 'Player.Error',
  PlaybackMarkerReached: 'Player.PlaybackMarkerReached',
  PlaybackBuffering: 'Player.Buffering',
});

// `declare namespace Silero { enum VADEvents }` (typings, VoxEngine 7.57.0); needs require(Modules.Silero).
const SileroVADEvents = Object.freeze({
  Result: 'Silero.VAD.Result', // {vad, speechStartAt?, speechEndAt?} (seconds)
  Reset: 'Silero.VAD.Reset',
  Error: 'Silero.VAD.Error', // {vad, reason}
  ConnectorInformation: 'Silero.VAD.ConnectorInformation',
});

// `Silero.VADParameters extends _WebSocketBasedClientParameters`: option -> type.
const SILERO_VAD_PARAMETERS = Object.freeze({
  threshold: 'number', minSilenceDurationMs: 'number', speechPadMs: 'number',
  privacy: 'boolean', statistics: 'boolean', trace: 'boolean', onWebSocketClose: 'function',
});

// TTSPlayerParameters (createTTSPlayer's second argument): option -> type. The emulator's voices are
// strings; in VoxEngine they are opaque VoiceList members.
const TTS_PLAYER_PARAMETERS = Object.freeze({
  voice: 'string', progressivePlayback: 'boolean', onPause: 'boolean', request: 'object', ttsOptions: 'object',
  apiKey: 'string',
});
// TTSPlayerParameters.progressivePlayback: "Available for providers: Amazon, Google, IBM, Microsoft,
// SaluteSpeech, T-Bank, Yandex" (not YandexV3).
const PROGRESSIVE_PROVIDERS = new Set(['Amazon', 'Google', 'IBM', 'Microsoft', 'SaluteSpeech', 'TBank', 'Yandex']);

// CallRecordParameters (Call.record's argument): option -> type.
const CALL_RECORD_PARAMETERS = Object.freeze({
  stereo: 'boolean', hd_audio: 'boolean', lossless: 'boolean', video: 'boolean', transcribe: 'boolean',
  expire: 'string', format: 'string', language: 'string', name: 'string', provider: 'string',
  recordNamePrefix: 'string', labels: 'object', dict: 'object', contentDispositionFilename: 'string',
});

const WebSocketEvents = Object.freeze({
  OPEN: 'WebSocket.Open',
  CLOSE: 'WebSocket.Close',
  MESSAGE: 'WebSocket.Message',
  ERROR: 'WebSocket.Error',
  MEDIA_STARTED: 'WebSocket.MediaEventStarted',
  MEDIA_ENDED: 'WebSocket.MediaEventEnded',
});

// Module names for require(Modules.X); the values are opaque in VoxEngine.
const Modules = Object.freeze({
  ACD: 'acd',
  AI: 'ai',
  ApplicationStorage: 'applicationstorage',
  ASR: 'asr',
  Conference: 'conference',
  Player: 'player',
  Recorder: 'recorder',
  Silero: 'silero',
  SmartQueue: 'smartqueue',
  StreamingAgent: 'streamingagent',
});

// Profiles that typings list for Russian, and a few others. Values are opaque tokens.
function profiles(provider, langs) {
  const o = {};
  for (const l of langs) o[l] = `ASRProfileList.${provider}.${l}`;
  return Object.freeze(o);
}

const ASRProfileList = Object.freeze({
  Amazon: profiles('Amazon', ['en_GB', 'en_US']),
  Deepgram: profiles('Deepgram', ['en', 'en_US', 'ru']),
  Google: profiles('Google', ['en_US', 'ru_RU']),
  Microsoft: profiles('Microsoft', ['en_US', 'ru_RU']),
  SaluteSpeech: profiles('SaluteSpeech', ['ru_RU']),
  TBank: profiles('TBank', ['ru_RU']),
  Yandex: profiles('Yandex', ['en_US', 'ru_RU']),
  YandexV3: profiles('YandexV3', ['auto', 'en_US', 'ru_RU']),
});

// ASRParameters.interimResults: "Available for providers: Amazon, Deepgram, Google, SaluteSpeech, T-Bank, Yandex."
const INTERIM_PROVIDERS = new Set(['Amazon', 'Deepgram', 'Google', 'SaluteSpeech', 'TBank', 'Yandex']);

function voices(provider, names) {
  const o = {};
  for (const n of names) o[n] = `VoiceList.${provider}.${n}`;
  return Object.freeze(o);
}

const VoiceList = Object.freeze({
  Default: voices('Default', ['ru_RU_Female', 'ru_RU_Male', 'en_US_Female']),
  Yandex: Object.freeze({
    Neural: voices('Yandex.Neural', ['ru_RU_alena', 'ru_RU_filipp', 'ru_RU_ermil', 'ru_RU_jane', 'ru_RU_omazh', 'ru_RU_zahar', 'ru_RU_marina']),
  }),
  YandexV3: voices('YandexV3', ['ru_RU_alena', 'ru_RU_filipp', 'ru_RU_ermil', 'ru_RU_jane', 'ru_RU_dasha', 'ru_RU_marina']),
  TBank: voices('TBank', ['ru_RU_Anna', 'ru_RU_Dima']),
  SaluteSpeech: voices('SaluteSpeech', ['ru_RU_natalia', 'ru_RU_boris', 'ru_RU_alexandra', 'ru_RU_sergey']),
  Microsoft: Object.freeze({ Neural: voices('Microsoft.Neural', ['ru_RU_SvetlanaNeural', 'ru_RU_DmitryNeural']) }),
});

function collectValues(root, out = new Set()) {
  for (const v of Object.values(root)) {
    if (typeof v === 'string') out.add(v);
    else if (v && typeof v === 'object') collectValues(v, out);
  }
  return out;
}

const PROFILE_VALUES = collectValues(ASRProfileList);
const VOICE_VALUES = collectValues(VoiceList);

module.exports = {
  AppEvents,
  CallEvents,
  ASREvents,
  PlayerEvents,
  WebSocketEvents,
  Modules,
  ASRProfileList,
  INTERIM_PROVIDERS,
  VoiceList,
  SileroVADEvents,
  SILERO_VAD_PARAMETERS,
  TTS_PLAYER_PARAMETERS,
  PROGRESSIVE_PROVIDERS,
  CALL_RECORD_PARAMETERS,
  PROFILE_VALUES,
  VOICE_VALUES,
};
