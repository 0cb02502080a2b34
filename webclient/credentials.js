// What this page calls with when the server does not trust its browser without a key (a
// browser on another machine, or a server with VOICE_API_KEYS): an API key the user
// pasted, or a client secret ("ek_…") from a link. No DOM here.
//
// The rules a reviewer should check:
// * Nothing is stored: no localStorage, sessionStorage, cookie or IndexedDB. The key lives
//   in this module's memory (not on `window`), so it is gone when the tab is closed or
//   reloaded.
// * The key is sent only in the Authorization header of fetch() requests to this page's
//   own server: to list the characters and to mint a short-lived client secret for each
//   call. The call itself (the SDP offer, the hang-up) carries only that secret, which
//   can open sessions for 10 minutes and do nothing else (no memories, no more secrets).
// * A secret given in the link's fragment (#client_secret=ek_…) never reaches a server
//   log (browsers do not send fragments) and is removed from the address bar at once.

const SECRET_PREFIX = "ek_";
const FRAGMENT_NAME = "client_secret";
// How long each call's secret may be used to open the call and to hang it up (a longer
// call is still ended when the page closes its connection).
const CALL_SECRET_SECONDS = 600;

export class CredentialError extends Error {}

export class Credentials {
  constructor() {
    this._key = null; // an API key: mints secrets
    this._secret = null; // a client secret given by the user or a link
  }

  /** Whether the user gave anything to call with. */
  get given() {
    return this._key !== null || this._secret !== null;
  }

  /** Whether the characters can be listed (that needs a real key). */
  get canList() {
    return this._key !== null;
  }

  /** Take an API key or a client secret as typed or pasted. */
  set(value) {
    const text = (value || "").trim();
    if (!text) throw new CredentialError("Paste an API key or a client secret first.");
    if (/\s/.test(text)) throw new CredentialError("A key has no spaces in it.");
    if (text.startsWith(SECRET_PREFIX)) {
      this._secret = text;
      this._key = null;
    } else {
      this._key = text;
      this._secret = null;
    }
  }

  forget() {
    this._key = this._secret = null;
  }

  /** A client secret from the address's fragment, if any; the fragment is cleared. */
  takeFromFragment(loc = window.location, hist = window.history) {
    const fragment = new URLSearchParams(loc.hash.replace(/^#/, ""));
    const secret = fragment.get(FRAGMENT_NAME);
    if (secret === null) return false;
    hist.replaceState(null, "", loc.pathname + loc.search);
    if (!secret.startsWith(SECRET_PREFIX)) return false;
    this._secret = secret;
    this._key = null;
    return true;
  }

  /** Headers for a request that needs the real key (listing the characters). */
  keyHeaders() {
    return this._key === null ? {} : { Authorization: `Bearer ${this._key}` };
  }

  /**
   * The client secret for one call: minted with the key, or the one given. `null` when
   * nothing was given (the server's own machine needs none).
   */
  async callSecret(baseUrl = "") {
    if (this._secret !== null) return this._secret;
    if (this._key === null) return null;
    let response;
    try {
      response = await fetch(`${baseUrl}/v1/realtime/client_secrets`, {
        method: "POST",
        cache: "no-store",
        headers: { "Content-Type": "application/json", ...this.keyHeaders() },
        body: JSON.stringify({
          expires_after: { anchor: "created_at", seconds: CALL_SECRET_SECONDS },
        }),
      });
    } catch {
      throw new CredentialError("The server cannot be reached. Is it running?");
    }
    let body = null;
    try {
      body = await response.json();
    } catch { /* not JSON */ }
    if (!response.ok) {
      const message = body && body.error && body.error.message;
      if (response.status === 401) this.forget(); // a wrong key is not tried again
      throw new CredentialError(
        message || `The server refused to start a call (${response.status}).`,
      );
    }
    return body.value;
  }
}
