// Reads chronos's AG-UI and AI SDK dialects with those ecosystems' own npm clients and prints
// what they rebuilt, as JSON, for tests/server/dialects/test_js_clients.py.
//   node clients.mjs agui  <server url>   @ag-ui/client HttpAgent: messages and state
//   node clients.mjs aisdk <server url>   ai: DefaultChatTransport + readUIMessageStream
//   node clients.mjs regenerate <server url>   @ai-sdk/react's Chat (useChat's): regenerate()
//   node clients.mjs aguiConnect <server url>  HttpAgent.connectAgent(), as is and with connect()
import { HttpAgent, runHttpRequest, transformHttpEventStream } from "@ag-ui/client";
import { Chat } from "@ai-sdk/react";
import { DefaultChatTransport, readUIMessageStream } from "ai";

const [mode, url] = process.argv.slice(2);
const id = () => Math.random().toString(36).slice(2);

async function agui() {
  const agent = new HttpAgent({ url: `${url}/ag-ui/chat`, threadId: `t-${id()}` });
  const turns = [];
  for (const content of ["hello", "what is the weather?", "approve this"]) {
    agent.addMessage({ id: id(), role: "user", content });
    await agent.runAgent();
    turns.push({ pending: agent.pendingInterrupts });
  }
  const [asked] = agent.pendingInterrupts;
  await agent.runAgent({ resume: [{ interruptId: asked.id, status: "resolved", payload: "yes" }] });
  return { turns, messages: agent.messages, state: agent.state, pending: agent.pendingInterrupts };
}

// @ag-ui/client 1.0.0's HttpAgent has no connect(): this is the one it lacks, posting to the
// server's reconnect route; connectAgent() does the rest.
class ReconnectingAgent extends HttpAgent {
  connect(input) {
    return transformHttpEventStream(runHttpRequest(
      () => this.fetch(`${this.url}/connect`, this.requestInit(input))));
  }
}

async function aguiConnect() {
  const threadId = `t-${id()}`;
  const agentUrl = `${url}/ag-ui/chat`;
  const leaving = new HttpAgent({ url: agentUrl, threadId });
  leaving.addMessage({ id: id(), role: "user", content: "slow please" });
  const before = [];
  const left = leaving.runAgent({ forwardedProps: { on_disconnect: "continue" } }, {
    onTextMessageContentEvent: ({ event }) => {
      // Gone after three: abortRun() does not stop what the client has read already (a loaded
      // machine's reads hold several events) from reaching this callback.
      if (before.length === 3) return;
      before.push(event.delta);
      if (before.length === 3) leaving.abortRun();
    },
  }).catch((e) => String(e));
  await left;
  const asIs = await new HttpAgent({ url: agentUrl, threadId }).connectAgent();
  const events = [];
  const back = new ReconnectingAgent({ url: agentUrl, threadId });
  const joined = await back.connectAgent({}, { onEvent: ({ event }) => events.push(event.type) });
  const afterEnd = await new ReconnectingAgent({ url: agentUrl, threadId }).connectAgent();
  return { before, asIs: asIs.newMessages, joined: joined.newMessages, messages: back.messages,
    events, afterEnd: afterEnd.newMessages };
}

async function lastMessage(stream) {
  let message;
  for await (const m of readUIMessageStream({ stream })) message = m;
  return message;
}

function userMessage(text) {
  return { id: id(), role: "user", parts: [{ type: "text", text }] };
}

async function aisdk() {
  const transport = new DefaultChatTransport({ api: `${url}/ai-sdk/chat` });
  const send = (chatId, text, abortSignal) => transport.sendMessages({
    chatId, messages: [userMessage(text)], trigger: "submit-message", abortSignal,
  });
  const text = await lastMessage(await send(`c-${id()}`, "hello"));
  const tools = await lastMessage(await send(`c-${id()}`, "what is the weather?"));

  // Reconnect mid-stream: read a few chunks, leave, then resume as useChat does.
  const chatId = `c-${id()}`;
  const leaving = new AbortController();
  const reader = (await send(chatId, "slow please", leaving.signal)).getReader();
  const before = [];
  while (before.filter((c) => c.type === "text-delta").length < 3) {
    before.push((await reader.read()).value);
  }
  leaving.abort();
  await reader.cancel().catch(() => {});
  const chunks = [];
  const resumed = await transport.reconnectToStream({ chatId });
  const [mine, theirs] = resumed.tee();
  const collecting = (async () => {
    for await (const c of theirs) chunks.push(c);
  })();
  const message = await lastMessage(mine);
  await collecting;
  const afterEnd = await transport.reconnectToStream({ chatId });
  return { text, tools, before, resumed: { message, chunks }, afterEnd: afterEnd === null };
}

// Two turns, the last answer regenerated, then the first one (which drops the second turn).
async function regenerate() {
  const chat = new Chat({
    id: `c-${id()}`, transport: new DefaultChatTransport({ api: `${url}/ai-sdk/chat` }),
  });
  const ids = () => chat.messages.map((m) => m.id);
  const state = async () => (await (await fetch(`${url}/threads/${chat.id}/state`)).json()).values;
  await chat.sendMessage({ text: "hello" });
  await chat.sendMessage({ text: "and again" });
  const asked = ids();
  await chat.regenerate();
  const regenerated = { ids: ids(), messages: chat.messages, error: chat.error?.message ?? null,
    state: await state() };
  await chat.regenerate({ messageId: chat.messages[1].id });
  return { asked, regenerated, first: { ids: ids(), error: chat.error?.message ?? null,
    state: await state() } };
}

const modes = { agui, aisdk, regenerate, aguiConnect };
const result = await modes[mode]();
process.stdout.write(JSON.stringify(result));
