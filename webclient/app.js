// The page: call / hang up, hands-free or push-to-talk, live transcript (with the function
// calls of a session that has tools), levels, latency.

import { CallError, RealtimeCall, fetchIceServers } from "./call.js";
import { CredentialError, Credentials } from "./credentials.js";
import { LevelMeter, meterFraction } from "./levels.js";
import { ToolActivity } from "./tool-activity.js";

// Remote audio louder than this (RMS, about -40 dBFS) counts as "the reply is heard".
const HEARD_RMS = 0.01;
const LEVEL_POLL_MS = 10;
// With push-to-talk the server buffers all audio until a commit; clearing it now and
// then while nobody holds the button keeps that buffer from filling up.
const IDLE_CLEAR_MS = 30000;

const $ = (id) => document.getElementById(id);
const ui = {
  app: document.querySelector(".app"),
  status: $("status"),
  callButton: $("call-button"),
  talkButton: $("talk-button"),
  modeInputs: document.querySelectorAll('input[name="mode"]'),
  micMeter: $("mic-meter"),
  botMeter: $("bot-meter"),
  latency: $("latency"),
  alert: $("alert"),
  transcript: $("transcript"),
  transcriptEmpty: $("transcript-empty"),
  audio: $("remote-audio"),
  companion: $("companion-select"),
  companionNote: $("companion-note"),
  avatar: $("avatar"),
  signIn: $("sign-in"),
  keyInput: $("key-input"),
};

/** Fill the companion picker from the server's characters (the list may be empty). */
async function loadCompanions() {
  let body;
  try {
    const response = await fetch("/v1/characters", {
      cache: "no-store",
      headers: state.credentials.keyHeaders(),
    });
    if (response.status === 401 || response.status === 421) {
      // Not trusted as the server's own machine: a key is needed (see credentials.js).
      if (state.credentials.canList) {
        state.credentials.forget();
        showAlert("The server refused that key.");
      }
      askForKey();
      return;
    }
    if (!response.ok) return;
    body = await response.json();
  } catch {
    return;
  }
  if (state.credentials.given) ui.signIn.hidden = true; // the key works
  state.companions = new Map(body.data.map((entry) => [entry.id, entry]));
  ui.companion.querySelectorAll("option:not([value=''])").forEach((option) => option.remove());
  for (const entry of body.data) {
    const option = document.createElement("option");
    option.value = entry.id;
    option.textContent = entry.name;
    ui.companion.append(option);
  }
  const wanted = new URLSearchParams(location.search).get("character");
  if (wanted && state.companions.has(wanted)) ui.companion.value = wanted;
  showCompanion();
}

function askForKey() {
  state.needsKey = true;
  if (!state.credentials.given) ui.signIn.hidden = false;
}

function useKey(event) {
  event.preventDefault();
  hideAlert();
  try {
    state.credentials.set(ui.keyInput.value);
  } catch (error) {
    if (!(error instanceof CredentialError)) throw error;
    showAlert(error.message);
    return;
  } finally {
    ui.keyInput.value = ""; // not left in the page
  }
  if (state.credentials.canList) {
    loadCompanions();
  } else {
    ui.signIn.hidden = true;
    ui.companionNote.textContent = "Calling with the client secret you gave.";
  }
}

function showCompanion() {
  const entry = state.companions.get(ui.companion.value);
  ui.companionNote.textContent = entry
    ? entry.description || (entry.tags || []).join(", ")
    : "Default voice and instructions";
  ui.avatar.style.backgroundImage = entry && entry.avatar_url ? `url("${entry.avatar_url}")` : "";
}

/** End of the user's speech to the first audible reply, per turn. */
class LatencyTracker {
  constructor() {
    this.values = [];
    this.armedAt = null;
    this.quietSeen = false;
  }

  arm(at) {
    this.armedAt = at;
    this.quietSeen = false;
  }

  disarm() {
    this.armedAt = null;
  }

  /** Feed the remote level; returns the latency (ms) when this sample completes a turn. */
  sample(level, at) {
    if (this.armedAt === null) return null;
    if (level < HEARD_RMS) {
      this.quietSeen = true; // the reply must start after the user stopped, not carry on
      return null;
    }
    if (!this.quietSeen) return null;
    const ms = at - this.armedAt;
    this.armedAt = null;
    this.values.push(ms);
    return ms;
  }

  median() {
    const sorted = [...this.values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }
}

const state = {
  phase: "idle", // idle | connecting | in-call
  credentials: new Credentials(), // a key or a client secret, where one is needed
  needsKey: false, // the server does not trust this browser without one
  companions: new Map(), // character id -> listing entry
  call: null,
  mic: null, // MediaStream
  context: null, // AudioContext
  micLevel: null,
  botLevel: null,
  poll: null,
  idleClear: null,
  talking: false,
  latency: new LatencyTracker(),
  bubbles: new Map(), // item_id -> element
  tools: new ToolActivity(ui.transcript, { onNewLine: shown }), // function calls, by call_id
};

// Exposed for tests and debugging.
window.voiceApp = {
  get call() { return state.call; },
  get pc() { return state.call ? state.call.pc : null; },
  get phase() { return state.phase; },
  get latencies() { return [...state.latency.values]; },
  get needsKey() { return state.needsKey; },
  remoteLevel: () => (state.botLevel ? state.botLevel.rms() : 0),
};

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function setPhase(phase, status) {
  state.phase = phase;
  ui.app.dataset.state = phase;
  ui.status.textContent = status;
  ui.callButton.textContent = phase === "idle" ? "Call" : "Hang up";
  ui.callButton.classList.toggle("hang-up", phase !== "idle");
  ui.talkButton.disabled = !(phase === "in-call" && mode() === "push-to-talk");
  ui.companion.disabled = phase !== "idle"; // who you talk to is chosen before the call
}

function showAlert(message, kind = "error") {
  ui.alert.textContent = message;
  ui.alert.dataset.kind = kind;
  ui.alert.hidden = false;
}

function hideAlert() {
  ui.alert.hidden = true;
}

// --- the call -------------------------------------------------------------------------------

async function startCall() {
  hideAlert();
  setPhase("connecting", "Connecting…");
  state.context = state.context || new AudioContext();
  state.context.resume();
  ui.audio.play().catch(() => {}); // unlock playback inside the click
  try {
    if (state.needsKey && !state.credentials.given) {
      throw new CredentialError("Paste your API key (or a client secret) first, then call.");
    }
    state.mic = await openMicrophone();
    const iceServers = await fetchIceServers();
    const secret = await state.credentials.callSecret();
    const call = new RealtimeCall({ iceServers, character: ui.companion.value, secret });
    state.call = call;
    call.addEventListener("event", (e) => onServerEvent(e.detail));
    call.addEventListener("ended", (e) => onEnded(call, e.detail));
    ui.audio.srcObject = call.remoteStream;
    state.micLevel = new LevelMeter(state.context, state.mic);
    await call.start(state.mic.getAudioTracks()[0]);
    if (call.ended) return;
    state.botLevel = new LevelMeter(state.context, call.remoteStream);
    state.poll = setInterval(pollLevels, LEVEL_POLL_MS);
  } catch (error) {
    const message = error instanceof CallError || error instanceof CredentialError || error.isMicError
      ? error.message
      : `Could not start the call: ${error.message || error}`;
    stopCall();
    if (error instanceof CallError && error.status === 401) {
      state.credentials.forget(); // e.g. an expired client secret: ask again
      askForKey();
    }
    if (state.needsKey && !state.credentials.given) askForKey();
    showAlert(message);
  }
}

async function openMicrophone() {
  if (!window.isSecureContext || !navigator.mediaDevices) {
    throw micError(
      "The microphone needs a secure page: open this over https:// (or on localhost).",
    );
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (error) {
    const messages = {
      NotAllowedError: "Microphone access was denied. Allow it in the site settings, then call again.",
      SecurityError: "Microphone access was denied. Allow it in the site settings, then call again.",
      NotFoundError: "No microphone was found. Connect one and call again.",
      NotReadableError: "The microphone is in use by another application.",
    };
    throw micError(messages[error.name] || `The microphone could not be opened (${error.name}).`);
  }
}

function micError(message) {
  const error = new Error(message);
  error.isMicError = true;
  return error;
}

function stopCall() {
  clearInterval(state.poll);
  clearInterval(state.idleClear);
  state.poll = state.idleClear = null;
  if (state.call) state.call.hangUp();
  state.call = null;
  if (state.mic) state.mic.getTracks().forEach((track) => track.stop());
  state.mic = null;
  for (const meter of [state.micLevel, state.botLevel]) meter && meter.disconnect();
  state.micLevel = state.botLevel = null;
  state.talking = false;
  state.latency.disarm();
  ui.talkButton.classList.remove("active");
  ui.micMeter.style.width = ui.botMeter.style.width = "0%";
  ui.app.classList.remove("speaking");
  setPhase("idle", "Ready");
}

function onEnded(call, { reason, dropped }) {
  if (call !== state.call) return;
  stopCall();
  if (dropped) showAlert(reason);
}

// --- server events ----------------------------------------------------------------------------

function onServerEvent(event) {
  if (state.tools.handle(event)) return; // a function call or its output
  switch (event.type) {
    case "session.created":
      setPhase("in-call", "In call");
      applyMode();
      break;
    case "input_audio_buffer.speech_started":
      ui.app.classList.add("user-speaking");
      break;
    case "input_audio_buffer.speech_stopped":
      ui.app.classList.remove("user-speaking");
      if (mode() === "hands-free") state.latency.arm(performance.now());
      break;
    case "conversation.item.added":
      if (event.item.role === "user" || event.item.role === "assistant") {
        const el = bubble(event.item.id, event.item.role);
        const text = typedText(event.item); // a message sent as text (e.g. by a sideband)
        if (text) {
          el.textContent = text;
          el.classList.remove("pending");
        }
      }
      break;
    case "conversation.item.input_audio_transcription.completed": {
      const text = event.transcript.trim();
      const el = bubble(event.item_id, "user");
      el.textContent = text || "(nothing heard)";
      el.classList.toggle("faint", !text);
      el.classList.remove("pending");
      break;
    }
    case "response.output_audio_transcript.delta":
    case "response.output_text.delta": {
      const el = bubble(event.item_id, "assistant");
      if (el.classList.contains("pending")) el.textContent = "";
      el.classList.remove("pending");
      el.textContent += event.delta;
      scrollTranscript();
      break;
    }
    case "response.output_audio_transcript.done":
    case "response.output_text.done": {
      const el = bubble(event.item_id, "assistant");
      el.textContent = event.transcript ?? event.text ?? el.textContent;
      el.classList.remove("pending");
      break;
    }
    case "conversation.item.truncated":
      bubble(event.item_id, "assistant").classList.add("interrupted");
      break;
    case "output_audio_buffer.started":
      ui.app.classList.add("speaking");
      break;
    case "output_audio_buffer.stopped":
    case "output_audio_buffer.cleared":
      ui.app.classList.remove("speaking");
      break;
    case "error":
      showAlert(event.error.message, "warn");
      break;
    default:
      break;
  }
}

function bubble(itemId, role) {
  let el = state.bubbles.get(itemId);
  if (!el) {
    el = document.createElement("p");
    el.className = `msg ${role} pending`;
    el.dataset.itemId = itemId;
    el.textContent = "…";
    ui.transcript.append(el);
    state.bubbles.set(itemId, el);
    shown();
  }
  return el;
}

/** The text parts of a message item (spoken ones get their words from other events). */
function typedText(item) {
  const typed = (item.content || [])
    .filter((part) => part.type === "input_text" || part.type === "output_text");
  return typed.map((part) => part.text || "").join("").trim();
}

/** A new line is in the transcript. */
function shown() {
  ui.transcriptEmpty.hidden = true;
  scrollTranscript();
}

function scrollTranscript() {
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

// --- levels and latency -----------------------------------------------------------------------

function pollLevels() {
  const now = performance.now();
  if (state.micLevel) ui.micMeter.style.width = `${meterFraction(state.micLevel.rms()) * 100}%`;
  if (!state.botLevel) return;
  const level = state.botLevel.rms();
  ui.botMeter.style.width = `${meterFraction(level) * 100}%`;
  const ms = state.latency.sample(level, now);
  if (ms !== null) {
    const median = state.latency.median();
    const count = state.latency.values.length;
    ui.latency.textContent =
      `Response time: ${Math.round(ms)} ms (median ${Math.round(median)} ms over ${count})`;
  }
}

// --- hands-free and push-to-talk --------------------------------------------------------------

function applyMode() {
  const pushToTalk = mode() === "push-to-talk";
  ui.app.dataset.mode = mode();
  ui.talkButton.disabled = !(state.phase === "in-call" && pushToTalk);
  clearInterval(state.idleClear);
  state.idleClear = null;
  if (!state.call || state.phase !== "in-call") return;
  const turnDetection = pushToTalk ? null : { type: "server_vad" };
  state.call.send({
    type: "session.update",
    session: { type: "realtime", audio: { input: { turn_detection: turnDetection } } },
  });
  setMicOpen(!pushToTalk);
  if (pushToTalk) {
    state.idleClear = setInterval(() => {
      if (!state.talking) state.call?.send({ type: "input_audio_buffer.clear" });
    }, IDLE_CLEAR_MS);
  }
}

function setMicOpen(open) {
  if (state.mic) state.mic.getAudioTracks().forEach((track) => { track.enabled = open; });
}

function pressTalk() {
  if (state.talking || state.phase !== "in-call" || mode() !== "push-to-talk") return;
  state.talking = true;
  ui.talkButton.classList.add("active");
  state.latency.disarm();
  state.call.send({ type: "output_audio_buffer.clear" }); // the user talks over the reply
  state.call.send({ type: "input_audio_buffer.clear" });
  setMicOpen(true);
}

function releaseTalk() {
  if (!state.talking) return;
  state.talking = false;
  ui.talkButton.classList.remove("active");
  // Audio still in flight must reach the server before the commit.
  const releasedAt = performance.now();
  setTimeout(() => {
    setMicOpen(false);
    if (!state.call || state.phase !== "in-call") return;
    state.call.send({ type: "input_audio_buffer.commit" });
    state.call.send({ type: "response.create" });
    state.latency.arm(releasedAt);
  }, 150);
}

// --- wiring ---------------------------------------------------------------------------------

ui.callButton.addEventListener("click", () => {
  if (state.phase === "idle") startCall();
  else stopCall();
});

ui.modeInputs.forEach((input) => input.addEventListener("change", applyMode));

ui.talkButton.addEventListener("pointerdown", (e) => {
  ui.talkButton.setPointerCapture(e.pointerId);
  pressTalk();
});
for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
  ui.talkButton.addEventListener(type, releaseTalk);
}
ui.talkButton.addEventListener("contextmenu", (e) => e.preventDefault());

function isSpace(e) {
  const typing = e.target instanceof HTMLInputElement && ["text", "password"].includes(e.target.type);
  return e.code === "Space" && !typing;
}
window.addEventListener("keydown", (e) => {
  if (!isSpace(e) || mode() !== "push-to-talk" || state.phase !== "in-call") return;
  e.preventDefault();
  if (!e.repeat) pressTalk();
});
window.addEventListener("keyup", (e) => {
  if (!isSpace(e) || !state.talking) return;
  e.preventDefault();
  releaseTalk();
});
window.addEventListener("blur", releaseTalk);
window.addEventListener("pagehide", () => state.call && state.call.hangUp());

ui.companion.addEventListener("change", showCompanion);
ui.signIn.addEventListener("submit", useKey);
if (state.credentials.takeFromFragment()) {
  ui.companionNote.textContent = "Calling with the client secret from the link.";
}
loadCompanions();
applyMode();
