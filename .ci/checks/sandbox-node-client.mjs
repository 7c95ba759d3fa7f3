// Runs Crisp's official Node client (crisp-api) against `crisp-gateway sandbox`: everyday
// calls, each answer checked. Usage: node sandbox-node-client.mjs http://127.0.0.1:PORT
// Exits non-zero on the first failure.
import assert from "node:assert/strict";
import { createRequire } from "node:module";

// Resolve crisp-api from the pinned install in target/ci-tools, not from the repository.
const require = createRequire(process.env.CRISP_API_TOOLS + "/package.json");
const { Crisp } = require("crisp-api");

const host = process.argv[2];
assert.ok(host, "usage: node sandbox-node-client.mjs http://127.0.0.1:PORT");
const website = "8c842203-7ed8-4e29-a608-7cf78a7d2fcc";

const client = new Crisp();
client.setRestHost(host); // base path stays the client's own `/v1/`
client.authenticateTier("website", "node-identifier", "node-key");

let step = "";
async function check(name, fn) {
  step = name;
  await fn();
  console.log(`ok - ${name}`);
}

try {
  let session, fingerprint, peopleId;

  await check("create a conversation", async () => {
    const created = await client.website.createNewConversation(website);
    assert.match(created.session_id, /^session_[0-9a-f-]{36}$/);
    session = created.session_id;
  });

  await check("send a text message", async () => {
    const sent = await client.website.sendMessageInConversation(website, session, {
      type: "text", from: "operator", origin: "chat", content: "Hello from the Node client",
    });
    assert.equal(typeof sent.fingerprint, "number");
    fingerprint = sent.fingerprint;
  });

  await check("a message without origin is refused as Crisp does", async () => {
    await assert.rejects(
      client.website.sendMessageInConversation(website, session, {
        type: "text", from: "operator", content: "no origin",
      }),
      (e) => e.code === 400 && e.message === "invalid_data" && /origin/.test(e.data.message)
    );
  });

  await check("list and get messages", async () => {
    const messages = await client.website.getMessagesInConversation(website, session);
    assert.equal(messages.length, 1);
    assert.equal(messages[0].content, "Hello from the Node client");
    const before = await client.website.getMessagesInConversation(website, session, messages[0].timestamp);
    assert.equal(before.length, 0);
    const one = await client.website.getMessageInConversation(website, session, fingerprint);
    assert.equal(one.fingerprint, fingerprint);
    assert.equal(one.from, "operator");
  });

  await check("update metas", async () => {
    await client.website.updateConversationMetas(website, session, {
      nickname: "Jane", email: "jane@example.com", segments: ["vip"], data: { plan: "pro" },
    });
    const metas = await client.website.getConversationMetas(website, session);
    assert.equal(metas.nickname, "Jane");
    assert.deepEqual(metas.segments, ["vip"]);
  });

  await check("change the state", async () => {
    await client.website.changeConversationState(website, session, "resolved");
    const state = await client.website.getConversationState(website, session);
    assert.equal(state.state, "resolved");
  });

  await check("list conversations and check existence", async () => {
    const list = await client.website.listConversations(website, 1);
    assert.ok(list.some((c) => c.session_id === session && c.meta.nickname === "Jane"));
    await client.website.checkConversationExists(website, session);
    await assert.rejects(
      client.website.getConversation(website, "session_00000000-0000-4000-8000-000000000000"),
      (e) => e.code === 404 && e.message === "not_found"
    );
  });

  await check("add, list, get and update a people profile", async () => {
    const added = await client.website.addNewPeopleProfile(website, {
      email: "bob@example.com", person: { nickname: "Bob" },
    });
    assert.match(added.people_id, /^[0-9a-f-]{36}$/);
    peopleId = added.people_id;
    const found = await client.website.listPeopleProfiles(website, 1, null, null, null, null, "bob");
    assert.equal(found.length, 1);
    assert.equal(found[0].people_id, peopleId);
    await client.website.updatePeopleProfile(website, peopleId, { person: { nickname: "Bobby" } });
    const profile = await client.website.getPeopleProfile(website, peopleId);
    assert.equal(profile.person.nickname, "Bobby");
    assert.equal(profile.email, "bob@example.com");
  });

  await check("list operators", async () => {
    const operators = await client.website.listWebsiteOperators(website);
    assert.ok(operators.length >= 1);
    assert.equal(operators[0].type, "operator");
    assert.ok(operators[0].details.user_id);
  });

  await check("get and update website settings", async () => {
    await client.website.updateWebsiteSettings(website, { name: "Node Shop", chatbox: { color_theme: "red" } });
    const settings = await client.website.getWebsiteSettings(website);
    assert.equal(settings.name, "Node Shop");
    assert.equal(settings.chatbox.color_theme, "red");
    assert.equal(settings.chatbox.file_transfer, true);
  });

  await check("create, get, save, list and delete a team", async () => {
    const operators = await client.website.listWebsiteOperators(website);
    const owner = operators[0].details.user_id;
    const created = await client.website.createNewTeam(website, {
      name: "Sales", emoji: "💰", operators: [owner],
    });
    assert.match(created.team_id, /^[0-9a-f-]{36}$/);
    await client.website.checkTeamExists(website, created.team_id);
    const team = await client.website.getTeam(website, created.team_id);
    assert.deepEqual([team.name, team.emoji, team.operators], ["Sales", "💰", [owner]]);
    await client.website.saveTeam(website, created.team_id, { name: "Sales EU", operators: [] });
    const teams = await client.website.listTeams(website, 1);
    assert.ok(teams.some((t) => t.team_id === created.team_id && t.name === "Sales EU"));
    await client.website.deleteTeam(website, created.team_id);
    await assert.rejects(
      client.website.getTeam(website, created.team_id),
      (e) => e.code === 404 && e.message === "not_found"
    );
  });

  await check("the Knowledge Base tree: path, content, metadata, list, history", async () => {
    const seeded = await client.website.listHelpdeskTree(website, "en", "articles", 1);
    assert.ok(seeded.some((entry) => entry.slug === "getting-started"));
    await client.website.createHelpdeskTreePath(website, "en", "guides", "setup");
    const entry = await client.website.resolveHelpdeskTreePath(website, "en", "guides", "setup");
    assert.equal(entry.slug, "setup");
    await client.website.saveHelpdeskTreeContent(website, "en", "guides", "setup", "# Setup");
    const content = await client.website.resolveHelpdeskTreeContent(website, "en", "guides", "setup");
    assert.equal(content.content, "# Setup");
    await client.website.updateHelpdeskTreeMetadata(website, "en", "guides", "setup", {
      title: "Set up", state: { published: true },
    });
    const metadata = await client.website.resolveHelpdeskTreeMetadata(website, "en", "guides", "setup");
    assert.deepEqual([metadata.title, metadata.state.published], ["Set up", true]);
    const pages = await client.website.listHelpdeskPages(website, "en", "guides", 1);
    assert.equal(pages[0].title, "Set up");
    const changes = await client.website.listHelpdeskHistoryChanges(website, 1, "en", "guides");
    assert.equal(changes.length, 3);
    const change = await client.website.resolveHelpdeskHistoryChange(website, changes[0].change_id);
    assert.equal(change.files[0].path, "setup");
    await client.website.deleteHelpdeskTreePath(website, "en", "guides", "setup");
    await assert.rejects(
      client.website.resolveHelpdeskTreePath(website, "en", "guides", "setup"),
      (e) => e.code === 404 && e.message === "not_found"
    );
  });

  await check("a user-tier route is refused to a website token as Crisp does", async () => {
    await assert.rejects(
      client.website.createWebsite({ name: "Nope", domain: "nope.example" }),
      (e) => e.code === 403 && e.message === "restricted_route_tier"
    );
  });

  await check("a wrong tier is refused", async () => {
    const other = new Crisp();
    other.setRestHost(host);
    other.authenticateTier("website", "node-identifier", "node-key");
    other.auth.tier = "robot";
    await assert.rejects(other.website.getWebsiteSettings(website), (e) => e.code === 401);
  });

  console.log("all Node client checks passed");
} catch (e) {
  console.error(`not ok - ${step}:`, e);
  process.exit(1);
}
