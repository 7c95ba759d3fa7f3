// openapi-typescript (default options) + openapi-fetch against the gateway: every value read
// below is typed by the generated `paths`, with no casts and no `any`.
import createClient from "openapi-fetch";
import type { paths } from "./schema";

const base = process.env.GATEWAY ?? "";
const key = process.env.KEY ?? "";
const client = createClient<paths>({
  baseUrl: base,
  headers: { Authorization: `Bearer ${key}` },
});

function check(condition: boolean, what: string): void {
  if (!condition) {
    throw new Error(`openapi-fetch: FAILED: ${what}`);
  }
}

async function main(): Promise<void> {
  // The README's example: the body is the action's fields, `query` Crisp's query parameters.
  const listed = await client.POST("/api/crisp/list/conversations", {
    body: { query: { per_page: 20 } },
  });
  check(listed.data !== undefined, `list/conversations answered ${listed.response.status}`);
  const before = listed.data?.result.length ?? -1;

  const created = await client.POST("/api/crisp/create/new/conversation", { body: {} });
  const sessionId: string = created.data?.result.session_id ?? "";
  check(sessionId.startsWith("session_"), `create/new/conversation gave a session_id (${sessionId})`);

  const sent = await client.POST("/api/crisp/send/message/in/conversation", {
    body: {
      sessionID: sessionId,
      body: { type: "text", from: "operator", origin: "chat", content: "Hello from openapi-fetch" },
    },
  });
  const sentOk: boolean = sent.data?.ok ?? false;
  check(sentOk, `send/message/in/conversation answered ${sent.response.status}`);

  const conversation = await client.POST("/api/crisp/get/conversation", {
    body: { sessionID: sessionId },
  });
  check(conversation.data?.result.session_id === sessionId, "get/conversation reads it back");

  const again = await client.POST("/api/crisp/list/conversations", {
    body: { query: { per_page: 20 } },
  });
  check((again.data?.result.length ?? 0) === before + 1, "list/conversations shows it");

  const added = await client.POST("/api/crisp/add/new/people/profile", {
    body: { body: { email: "ada.ts@example.com", person: { nickname: "Ada TS" } } },
  });
  const peopleId: string = added.data?.result.people_id ?? "";
  check(peopleId !== "", "add/new/people/profile gave a people_id");

  const profile = await client.POST("/api/crisp/get/people/profile", {
    body: { peopleID: peopleId },
  });
  const nickname: string | null | undefined = profile.data?.result.person?.nickname;
  check(nickname === "Ada TS", `get/people/profile reads the nickname (${nickname})`);

  const unauthorized = await createClient<paths>({
    baseUrl: base,
    headers: { Authorization: "Bearer sk_live_wrong" },
  }).POST("/api/crisp/list/conversations", { body: {} });
  check(unauthorized.error?.error.reason === "unauthorized", "a wrong key is a typed 401");
  console.log("openapi-fetch: list, create, send, get and profile calls typed and answered");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
