// The @hey-api/openapi-ts client (default options: SDK functions + fetch client) against the
// gateway: every value read below is typed by the generated SDK, with no casts and no `any`.
import { client } from "./hey-api/client.gen";
import {
  crispAddNewPeopleProfile,
  crispCreateNewConversation,
  crispGetPeopleProfile,
  crispListConversations,
  crispSendMessageInConversation,
} from "./hey-api/sdk.gen";

client.setConfig({
  baseUrl: process.env.GATEWAY ?? "",
  headers: { Authorization: `Bearer ${process.env.KEY ?? ""}` },
});

function check(condition: boolean, what: string): void {
  if (!condition) {
    throw new Error(`hey-api: FAILED: ${what}`);
  }
}

async function main(): Promise<void> {
  const listed = await crispListConversations({ body: { query: { per_page: 20 } } });
  check(listed.data !== undefined, `list/conversations answered ${listed.response.status}`);
  const count: number = listed.data?.result.length ?? -1;
  check(count >= 0, "list/conversations gave a list");

  const created = await crispCreateNewConversation({ body: {} });
  const sessionId: string = created.data?.result.session_id ?? "";
  check(sessionId.startsWith("session_"), `create/new/conversation gave a session_id (${sessionId})`);

  const sent = await crispSendMessageInConversation({
    body: {
      sessionID: sessionId,
      body: { type: "text", from: "operator", origin: "chat", content: "Hello from hey-api" },
    },
  });
  const sentOk: boolean = sent.data?.ok ?? false;
  check(sentOk, `send/message/in/conversation answered ${sent.response.status}`);

  const added = await crispAddNewPeopleProfile({
    body: { body: { email: "ada.hey@example.com", person: { nickname: "Ada Hey" } } },
  });
  const peopleId: string = added.data?.result.people_id ?? "";
  check(peopleId !== "", "add/new/people/profile gave a people_id");

  const profile = await crispGetPeopleProfile({ body: { peopleID: peopleId } });
  const nickname: string | null | undefined = profile.data?.result.person?.nickname;
  check(nickname === "Ada Hey", `get/people/profile reads the nickname (${nickname})`);
  console.log("hey-api: list, create, send and profile calls typed and answered");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
