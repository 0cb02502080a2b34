// One WebRTC call to the server, as in the OpenAI Realtime browser flow: the microphone
// goes out on an audio track, the reply comes back on one, and the Realtime JSON events
// travel on the "oai-events" data channel. No DOM here: the page listens to events.

const EVENTS_CHANNEL = "oai-events";
// Candidates gathered after this long are left out of the offer (an unreachable STUN
// server must not hold up the call).
const GATHER_TIMEOUT_MS = 3000;
// Chrome reports "disconnected" during short network blips; only this long is a drop.
const DISCONNECT_GRACE_MS = 4000;

export class CallError extends Error {
  constructor(kind, message, status = null) {
    super(message);
    this.kind = kind; // "unreachable" | "refused" | "dropped"
    this.status = status; // the HTTP status of a refusal
  }
}

/** Fetch the STUN/TURN servers the server wants browsers to use. */
export async function fetchIceServers(baseUrl = "") {
  let response;
  try {
    response = await fetch(`${baseUrl}/v1/realtime/config`, { cache: "no-store" });
  } catch {
    throw new CallError("unreachable", "The server cannot be reached. Is it running?");
  }
  if (!response.ok) {
    throw new CallError("refused", `The server answered ${response.status} for its configuration.`);
  }
  const body = await response.json();
  return body.ice_servers || [];
}

/**
 * Events: "event" (detail: a Realtime server event), "open" (data channel ready),
 * "ended" (detail: {reason, dropped}). `secret`: a client secret to call with (off the
 * server's machine); without one the server must trust this browser as local.
 */
export class RealtimeCall extends EventTarget {
  constructor({ baseUrl = "", iceServers = [], character = "", secret = null } = {}) {
    super();
    this.baseUrl = baseUrl;
    this.query = character ? `?character=${encodeURIComponent(character)}` : "";
    this.auth = secret ? { Authorization: `Bearer ${secret}` } : {};
    this.pc = new RTCPeerConnection({ iceServers });
    this.channel = this.pc.createDataChannel(EVENTS_CHANNEL);
    this.remoteStream = new MediaStream();
    this.callId = null;
    this.ended = false;
    this._disconnectTimer = null;

    this.pc.addEventListener("track", (e) => this.remoteStream.addTrack(e.track));
    this.pc.addEventListener("connectionstatechange", () => this._onConnectionState());
    this.channel.addEventListener("open", () => this.dispatchEvent(new Event("open")));
    this.channel.addEventListener("message", (e) => this._onMessage(e.data));
    this.channel.addEventListener("close", () => this._end("The server ended the call.", true));
  }

  /** Offer the microphone track, exchange SDP with the server, wait for the connection. */
  async start(micTrack) {
    this.pc.addTrack(micTrack);
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await this._gathered();
    let response;
    try {
      response = await fetch(`${this.baseUrl}/v1/realtime/calls${this.query}`, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", ...this.auth },
        body: this.pc.localDescription.sdp,
      });
    } catch {
      throw new CallError("unreachable", "The server cannot be reached. Is it running?");
    }
    if (response.status !== 201) {
      let message = `The server refused the call (${response.status}).`;
      try {
        message = (await response.json()).error.message || message;
      } catch { /* not JSON */ }
      throw new CallError("refused", message, response.status);
    }
    const location = response.headers.get("Location") || "";
    this.callId = location.split("/").pop() || null;
    await this.pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  }

  /** Send one Realtime client event (dropped if the channel is not open). */
  send(event) {
    if (this.channel.readyState === "open") {
      this.channel.send(JSON.stringify(event));
    }
  }

  /** Hang up: tell the server, close the connection. Safe to call twice. */
  hangUp() {
    if (this.ended) return;
    if (this.callId) {
      // Best effort: closing the connection ends the call on the server anyway.
      fetch(`${this.baseUrl}/v1/realtime/calls/${this.callId}/hangup`, {
        method: "POST",
        headers: this.auth,
        keepalive: true,
      }).catch(() => {});
    }
    this._end("You hung up.", false);
  }

  _onMessage(data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    this.dispatchEvent(new CustomEvent("event", { detail: event }));
  }

  _onConnectionState() {
    const state = this.pc.connectionState;
    clearTimeout(this._disconnectTimer);
    if (state === "failed") {
      this._end("The call dropped: the connection failed.", true);
    } else if (state === "closed") {
      this._end("The call ended.", true);
    } else if (state === "disconnected") {
      this._disconnectTimer = setTimeout(
        () => this._end("The call dropped: the connection was lost.", true),
        DISCONNECT_GRACE_MS,
      );
    }
  }

  _end(reason, dropped) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this._disconnectTimer);
    this.pc.getSenders().forEach((sender) => sender.track && sender.track.stop());
    this.remoteStream.getTracks().forEach((track) => track.stop());
    this.channel.close();
    this.pc.close();
    this.dispatchEvent(new CustomEvent("ended", { detail: { reason, dropped } }));
  }

  _gathered() {
    if (this.pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => this.pc.iceGatheringState === "complete" && done();
      const timer = setTimeout(done, GATHER_TIMEOUT_MS);
      this.pc.addEventListener("icegatheringstatechange", check);
    });
  }
}
