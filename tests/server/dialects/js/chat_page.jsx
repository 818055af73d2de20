// A useChat page, bundled by esbuild at test time (test_browser.py) and served by the test at
// chronos serve's origin; its transport posts to the AI SDK dialect of the `chat` graph.
import React, { useState } from "react";
import { createRoot } from "react-dom/client";
import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport } from "ai";

const chatId = `page-${Date.now()}`; // once: a new id would make useChat start a new chat

function Chat() {
  const { messages, sendMessage, status } = useChat({
    id: chatId,
    transport: new DefaultChatTransport({ api: "/ai-sdk/chat" }),
  });
  const [input, setInput] = useState("");
  return (
    <main>
      <ol id="messages">
        {messages.map((m) => (
          <li key={m.id} className={m.role}>
            {m.parts.filter((p) => p.type === "text").map((p) => p.text).join("")}
          </li>
        ))}
      </ol>
      <p id="status">{status}</p>
      <form onSubmit={(e) => { e.preventDefault(); sendMessage({ text: input }); setInput(""); }}>
        <input id="prompt" value={input} onChange={(e) => setInput(e.target.value)} />
        <button id="send" type="submit">Send</button>
      </form>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<Chat />);
