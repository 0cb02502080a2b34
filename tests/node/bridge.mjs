// A real Node Realtime client, driven by the tests over stdin/stdout (tests/client_drivers.py
// BridgeDriver). `node bridge.mjs openai` uses the official SDK's OpenAIRealtimeWebSocket,
// `node bridge.mjs agents-realtime` the Agents SDK's RealtimeSession over its
// OpenAIRealtimeWebSocket transport. Each runs with its defaults: only the URL and the API key
// point at the server (env VOICE_HTTPS_BASE, VOICE_WSS_BASE, VOICE_API_KEY); the certificate is
// trusted through NODE_EXTRA_CA_CERTS, as the README tells Node users.
//
// Out (stdout, one JSON object a line): {"server": event} for every server event the library
// received, {"client": type} for the library's own events, {"ready": true}, {"fatal": msg}.
// In (stdin, one JSON object a line): {"op": "audio", "audio": b64} a microphone chunk;
// {"op": "text", "text"} a typed user message answered by the library; {"op": "ptt", "audio"}
// the library's push-to-talk turn; {"op": "raw", "event"} a raw client event; {"op": "close"}.
// VOICE_PTT=1: the app configured push-to-talk (turn detection off) when it connected.
// VOICE_TOOL_OUTPUT (agents-realtime only): the agent gets a `get_weather` tool() with zod
// parameters whose execute() answers that text; it prints {"tool": {"event": "ran", "input"}}
// when the SDK runs it, {"tool": {"event": "tool_start" | "tool_end", ...}} for the SDK's own
// events, and {"history": [...]} (type, role, itemId, name, output of each item) on
// history_updated.

import readline from 'node:readline';

const which = process.argv[2];
const httpsBase = process.env.VOICE_HTTPS_BASE;
const wssBase = process.env.VOICE_WSS_BASE;
const apiKey = process.env.VOICE_API_KEY;
const ptt = process.env.VOICE_PTT === '1';
const CHUNK = 24000 * 2 * 40 / 1000; // 40 ms of PCM16 at 24 kHz

const out = (message) => process.stdout.write(JSON.stringify(message) + '\n');
const fail = (err) => {
  out({ fatal: String(err?.stack ?? err) });
  process.exit(1);
};
process.on('unhandledRejection', fail);

const chunks = (b64) => {
  const bytes = Buffer.from(b64, 'base64');
  const parts = [];
  for (let offset = 0; offset < bytes.length; offset += CHUNK) {
    parts.push(bytes.subarray(offset, offset + CHUNK));
  }
  return parts;
};
const arrayBuffer = (buffer) =>
  buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);

async function openaiClient() {
  const { default: OpenAI } = await import('openai');
  const { OpenAIRealtimeWebSocket } = await import('openai/realtime/websocket');
  const client = new OpenAI({ apiKey, baseURL: httpsBase });
  const rt = new OpenAIRealtimeWebSocket({ model: 'voice' }, client);
  rt.on('event', (event) => out({ server: event }));
  rt.on('error', (err) => out({ client: `error: ${err?.message ?? err}` }));
  await new Promise((resolve, reject) => {
    rt.socket.addEventListener('open', resolve, { once: true });
    rt.socket.addEventListener('error', (event) => reject(event.error ?? event), { once: true });
  });
  if (ptt) {
    rt.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
  }
  return {
    audio: (b64) => rt.send({ type: 'input_audio_buffer.append', audio: b64 }),
    text: (text) => {
      rt.send({
        type: 'conversation.item.create',
        item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] },
      });
      rt.send({ type: 'response.create' });
    },
    ptt: (b64) => {
      for (const part of chunks(b64)) {
        rt.send({ type: 'input_audio_buffer.append', audio: part.toString('base64') });
      }
      rt.send({ type: 'input_audio_buffer.commit' });
      rt.send({ type: 'response.create' });
    },
    raw: (event) => rt.send(event),
    close: () => rt.close(),
  };
}

async function agentsRealtimeClient() {
  const { RealtimeAgent, RealtimeSession, OpenAIRealtimeWebSocket } = await import(
    '@openai/agents-realtime'
  );
  const toolOutput = process.env.VOICE_TOOL_OUTPUT;
  const tools = [];
  if (toolOutput !== undefined) {
    const { tool } = await import('@openai/agents-realtime');
    const { z } = await import('zod');
    tools.push(
      tool({
        name: 'get_weather',
        description: 'Get the current weather for a city.',
        parameters: z.object({ city: z.string().describe("The city's name.") }),
        execute: async (input) => {
          out({ tool: { event: 'ran', input } });
          return toolOutput;
        },
      }),
    );
  }
  const agent = new RealtimeAgent({
    name: 'Assistant',
    instructions: 'You are a helpful voice assistant.',
    tools,
  });
  const transport = new OpenAIRealtimeWebSocket();
  const session = new RealtimeSession(agent, {
    transport,
    model: 'voice',
    ...(ptt ? { config: { audio: { input: { turnDetection: null } } } } : {}),
  });
  session.on('transport_event', (event) => out({ server: event }));
  for (const name of ['audio', 'audio_start', 'audio_stopped', 'audio_interrupted', 'agent_start', 'agent_end', 'history_updated']) {
    session.on(name, () => out({ client: name }));
  }
  session.on('agent_tool_start', (_context, _agent, tool, details) => {
    out({ client: 'agent_tool_start' });
    out({ tool: { event: 'tool_start', name: tool.name, callId: details?.toolCall?.callId } });
  });
  session.on('agent_tool_end', (_context, _agent, tool, result, details) => {
    out({ client: 'agent_tool_end' });
    out({ tool: { event: 'tool_end', name: tool.name, output: result, callId: details?.toolCall?.callId } });
  });
  session.on('history_updated', (history) =>
    out({
      history: history.map((item) => ({
        type: item.type, role: item.role, itemId: item.itemId, name: item.name, output: item.output,
      })),
    }),
  );
  session.on('error', (err) => out({ client: `error: ${JSON.stringify(err?.error ?? err)}` }));
  await session.connect({ apiKey, url: `${wssBase}/realtime?model=voice` });
  return {
    audio: (b64) => session.sendAudio(arrayBuffer(Buffer.from(b64, 'base64'))),
    text: (text) => session.sendMessage(text),
    ptt: (b64) => {
      const parts = chunks(b64);
      parts.forEach((part, index) =>
        session.sendAudio(arrayBuffer(part), { commit: index === parts.length - 1 }),
      );
      session.transport.sendEvent({ type: 'response.create' });
    },
    raw: (event) => session.transport.sendEvent(event),
    close: () => session.close(),
  };
}

const clients = { openai: openaiClient, 'agents-realtime': agentsRealtimeClient };
if (!clients[which]) fail(`unknown client ${which}; one of ${Object.keys(clients)}`);
const client = await clients[which]().catch(fail);
out({ ready: true });

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = JSON.parse(line);
  try {
    if (command.op === 'close') break;
    await client[command.op](command.audio ?? command.text ?? command.event);
  } catch (err) {
    out({ client: `error: ${err?.message ?? err}` });
  }
}
client.close();
process.exit(0);
