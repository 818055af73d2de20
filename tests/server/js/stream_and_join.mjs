// Streams a run and joins a background run through the official npm SDK, and prints what the
// SDK yielded as JSON: `node stream_and_join.mjs http://127.0.0.1:PORT`.
// Run by tests/server/test_conformance_js.py against chronos serve and langgraph dev.
import { Client } from "@langchain/langgraph-sdk";

const GRAPH_ID = "agent";
const client = new Client({ apiUrl: process.argv[2] });

// What a UI reads from each part; ids and timestamps left out, so both servers compare.
function summarise(part) {
  switch (part.event) {
    case "values":
      return [part.event, part.data.steps ?? []];
    case "updates":
      return [part.event, Object.keys(part.data)];
    case "messages":
      return [part.event, [part.data[0].type, part.data[0].content, part.data[1].langgraph_node]];
    case "custom":
      return [part.event, part.data];
    default:
      return [part.event, null];
  }
}

async function collect(parts) {
  const trace = [];
  for await (const part of parts) {
    const isEndMarker = part.event === "messages" && part.data[0].chunk_position === "last"
      && !part.data[0].content;
    if (!isEndMarker) trace.push(summarise(part));
  }
  return trace;
}

const streamed = await client.threads.create();
const stream = await collect(client.runs.stream(streamed.thread_id, GRAPH_ID, {
  input: { topic: "js" },
  streamMode: ["values", "updates", "custom", "messages-tuple"],
}));

const joined = await client.threads.create();
const run = await client.runs.create(joined.thread_id, GRAPH_ID, {
  input: { topic: "bg", token_delay: 0.005 },
  streamMode: ["values", "custom"],
  streamResumable: true,
});
const join = await collect(client.runs.joinStream(joined.thread_id, run.run_id, { lastEventId: "-1" }));
const final = await client.runs.join(joined.thread_id, run.run_id);
const status = (await client.runs.get(joined.thread_id, run.run_id)).status;

console.log(JSON.stringify({ stream, join, final: final.steps, status }));
