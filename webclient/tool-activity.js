// Function calls in the conversation view: one line per call, with its name, arguments and
// output, as the server's events tell of them. The model's and the app's text goes into the
// page as text only (textContent / attributes, never markup). A session without function
// tools gets no event of a call, so no line.

// Arguments and outputs longer than this are cut (the whole of it, up to TITLE_CHARS, is
// the line's tooltip).
export const SHOWN_CHARS = 120;
const TITLE_CHARS = 2000;

/** `text` in at most `max` characters: cut with an ellipsis if longer. */
export function shorten(text, max = SHOWN_CHARS) {
  const chars = Array.from(text); // not splitting a character made of two code units
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}

/** JSON text written compactly (`{"city":"Paris"}`); anything else with its whitespace folded. */
export function compact(text) {
  const raw = typeof text === "string" ? text : JSON.stringify(text ?? "");
  try {
    return JSON.stringify(JSON.parse(raw));
  } catch {
    return raw.replace(/\s+/g, " ").trim();
  }
}

/**
 * What an event says about a function call, or null if nothing: `{callId, name?, arguments?,
 * output?, status?}` (status: "in_progress" | "completed" | "incomplete").
 */
export function toolFact(event) {
  switch (event.type) {
    case "response.output_item.added":
    case "response.output_item.done":
    case "conversation.item.added":
    case "conversation.item.done": {
      const item = event.item || {};
      if (!item.call_id) return null;
      if (item.type === "function_call") {
        const done = event.type.endsWith(".done") || item.status !== "in_progress";
        return {
          callId: item.call_id,
          name: item.name,
          arguments: done ? item.arguments : undefined, // while in progress, not yet written
          status: item.status,
        };
      }
      if (item.type === "function_call_output") {
        return { callId: item.call_id, output: item.output ?? "" };
      }
      return null;
    }
    case "response.function_call_arguments.done":
      return event.call_id
        ? { callId: event.call_id, name: event.name, arguments: event.arguments }
        : null;
    default:
      return null;
  }
}

/** The lines of the calls of one page, in `container` (the transcript). */
export class ToolActivity {
  /** `onNewLine(el)`: called after a line was added (e.g. to scroll the transcript). */
  constructor(container, { onNewLine = () => {} } = {}) {
    this.container = container;
    this.onNewLine = onNewLine;
    this.lines = new Map(); // call_id -> {el, name, args, output, mark}
  }

  /** Show what `event` says of a call; true if it was about one. */
  handle(event) {
    const fact = toolFact(event);
    if (!fact) return false;
    const line = this._line(fact.callId);
    if (fact.name) line.name.textContent = fact.name;
    if (fact.arguments !== undefined) {
      const args = compact(fact.arguments);
      line.args.textContent = shorten(args);
      line.args.title = shorten(args, TITLE_CHARS);
      line.args.classList.remove("pending");
    }
    if (fact.output !== undefined) {
      const output = compact(fact.output);
      line.output.textContent = shorten(output) || "(empty)";
      line.output.title = shorten(output, TITLE_CHARS);
      line.output.hidden = false;
    }
    if (fact.status) line.el.dataset.status = fact.status;
    const cut = line.el.dataset.status === "incomplete"; // cancelled, barged in, or failed
    line.el.classList.toggle("incomplete", cut);
    line.mark.textContent = cut ? "cut off" : "";
    line.mark.hidden = !cut;
    return true;
  }

  _line(callId) {
    let line = this.lines.get(callId);
    if (line) return line;
    const el = document.createElement("p");
    el.className = "tool";
    el.dataset.callId = callId;
    const part = (className, text) => {
      const span = document.createElement("span");
      span.className = className;
      span.textContent = text;
      el.append(span);
      return span;
    };
    line = {
      el,
      name: part("tool-name", "function"), // a result whose call this page never saw
      args: part("tool-args pending", "…"),
      output: part("tool-output", ""),
      mark: part("tool-mark", ""),
    };
    line.output.hidden = line.mark.hidden = true;
    this.lines.set(callId, line);
    this.container.append(el);
    this.onNewLine(el);
    return line;
  }
}
