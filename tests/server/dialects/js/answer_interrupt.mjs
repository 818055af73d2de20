// A paused chronos run through the openai npm package: the stream helper rebuilds the
// `interrupt` tool call, and the tool result, sent back as any tool-calling client does,
// resumes the run. Usage: node answer_interrupt.mjs BASE_URL MODEL ANSWER
import OpenAI from "openai";

const [baseURL, model, answer] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const messages = [{ role: "user", content: "write it" }];
const paused = await client.chat.completions.stream({ model, messages }).finalChatCompletion();
const { message, finish_reason: finishReason } = paused.choices[0];
const [call] = message.tool_calls;
messages.push(message, { role: "tool", tool_call_id: call.id, content: answer });
const done = await client.chat.completions.create({ model, messages });
console.log(JSON.stringify({
  paused: { content: message.content, finishReason, name: call.function.name,
    arguments: JSON.parse(call.function.arguments) },
  done: { content: done.choices[0].message.content, finishReason: done.choices[0].finish_reason },
}));
