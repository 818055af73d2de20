// Reads chronos serve's OpenAI-compatible routes with the openai npm package and prints what
// it rebuilt as one JSON object. Usage: node read_openai.mjs BASE_URL MODEL PROMPT...
// Each PROMPT is used once, in order: chat stream, chat stream helper, chat whole, responses
// stream, responses stream helper, responses whole (the replay graph's prompts are one-shot).
import OpenAI from "openai";

const [baseURL, model, ...prompts] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const ask = (content) => [{ role: "user", content }];
const out = {};

const chunks = [];
for await (const chunk of await client.chat.completions.create({
  model, messages: ask(prompts[0]), stream: true,
})) chunks.push(chunk);
out.chatStream = {
  content: chunks.map((c) => c.choices[0]?.delta?.content ?? "").join(""),
  reasoning: chunks.map((c) => c.choices[0]?.delta?.reasoning_content ?? "").join(""),
  finishReason: chunks.at(-1).choices[0].finish_reason,
};

const helper = client.chat.completions.stream({ model, messages: ask(prompts[1]) });
const fromHelper = await helper.finalChatCompletion();
out.chatHelper = {
  content: fromHelper.choices[0].message.content,
  toolCalls: (fromHelper.choices[0].message.tool_calls ?? []).map((c) => ({
    id: c.id, name: c.function.name, arguments: c.function.arguments })),
  finishReason: fromHelper.choices[0].finish_reason,
};

const whole = await client.chat.completions.create({ model, messages: ask(prompts[2]) });
out.chatWhole = { content: whole.choices[0].message.content,
  reasoning: whole.choices[0].message.reasoning_content ?? null };

const types = [];
let text = "";
let reasoning = "";
for await (const event of await client.responses.create({ model, input: prompts[3], stream: true })) {
  types.push(event.type);
  if (event.type === "response.output_text.delta") text += event.delta;
  if (event.type === "response.reasoning_text.delta") reasoning += event.delta;
}
out.responsesStream = { text, reasoning, first: types[0], last: types.at(-1) };

const responseHelper = client.responses.stream({ model, input: prompts[4] });
const finalResponse = await responseHelper.finalResponse();
out.responsesHelper = {
  text: finalResponse.output_text,
  calls: finalResponse.output.filter((i) => i.type === "function_call").map((i) => ({
    id: i.call_id, name: i.name, arguments: i.arguments })),
};

const response = await client.responses.create({ model, input: prompts[5] });
out.responsesWhole = { text: response.output_text, status: response.status };

try {
  await client.chat.completions.create({ model: "no-such-graph", messages: ask("hi") });
  out.unknownModel = null;
} catch (error) {
  out.unknownModel = { status: error.status, code: error.code, param: error.param };
}

console.log(JSON.stringify(out));
