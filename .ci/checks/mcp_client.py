"""The official MCP Python SDK against a running gateway (see mcp-clients.sh).

Usage: python mcp_client.py BASE_URL KEY [size-cap]
With `size-cap`, only the checks of a gateway whose MCP result limit is a few kilobytes, in front
of a sandbox seeded with more conversations than fit.
Exits non-zero, naming the failed check, on the first failure.
"""

import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

BASE, KEY = sys.argv[1], sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else "all"
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    checks += 1
    print(f"ok - {what}")


async def with_session(path, work, key=KEY):
    headers = {"Authorization": f"Bearer {key}"}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(f"{BASE}{path}", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                return init, await work(session)


async def list_names(session):
    return [tool.name for tool in (await session.list_tools()).tools]


def flatten(error):
    if error is None:
        return "no error"
    inner = getattr(error, "exceptions", None)
    if inner:
        return "; ".join(flatten(e) for e in inner)
    return f"{type(error).__name__}: {error}"


def data(result):
    """Crisp's data: the text content, which is JSON."""
    return json.loads(result.content[0].text)


async def main():
    init, meta = await with_session("/mcp", list_names)
    check(init.server_info.name == "crisp-gateway", "initialize names the server")
    check(
        meta == ["crisp_search_actions", "crisp_describe_action", "crisp_call_action", "crisp_list_accounts"],
        f"default toolset is the 4 meta-tools ({meta})",
    )
    _, essentials = await with_session("/mcp/essentials", list_names)
    check(len(essentials) == 16 and "crisp_archive_conversation" in essentials, "essentials has the connector's 16 tools")
    _, everything = await with_session("/mcp/all", list_names)
    check(len(everything) == 267, f"all has 267 tools ({len(everything)})")
    _, people = await with_session("/mcp/x/people", list_names)
    check(0 < len(people) < 267 and all("people" in n for n in people), f"x/people has the people domain ({len(people)})")
    _, union = await with_session("/mcp?toolsets=essentials,helpdesk", list_names)
    check(len(union) > 16 and "crisp_send_message" in union, "a toolsets query parameter picks a union")

    async def calls(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        check(tools["crisp_list_conversations"].annotations.read_only_hint is True, "reads are readOnlyHint")
        check(tools["crisp_remove_conversation"].annotations.destructive_hint is True, "deletes are destructiveHint")
        check("sessionID" in tools["crisp_get_conversation"].input_schema["required"], "schemas require path parameters")
        # The SDK checks structured content against a declared outputSchema on every call.
        output = tools["crisp_get_conversation"].output_schema
        check(output is not None and output["properties"]["result"]["$ref"] == "#/$defs/Conversation", "typed results declare an outputSchema")
        typed = await session.call_tool("crisp_get_conversation", {"sessionID": "session_ci"})
        check(not typed.is_error and isinstance(typed.structured_content["result"]["session_id"], str), "a typed result matches its outputSchema")
        read = await session.call_tool("crisp_list_conversations", {"query": {"per_page": 20}})
        check(not read.is_error, f"a read succeeds ({read.content[0].text[:200]})")
        check(read.structured_content["ok"] is True and read.structured_content["tool"] == "crisp_list_conversations", "a read's structured content is the REST envelope")
        check(data(read) == read.structured_content["result"], "a read's text is Crisp's data")
        write = await session.call_tool(
            "crisp_send_message_in_conversation",
            {"sessionID": "session_ci", "body": {"type": "text", "from": "operator", "origin": "chat", "content": "Hi"}},
        )
        check(not write.is_error, f"a write succeeds ({write.content[0].text[:200]})")
        head = await session.call_tool("crisp_check_conversation_exists", {"sessionID": "session_ci"})
        check(not head.is_error and set(data(head)) == {"exists"}, f"a HEAD answers exists ({head.content[0].text})")
        bad = await session.call_tool("crisp_get_conversation", {"sessionId": "typo"})
        check(bad.is_error and "sessionID" in bad.content[0].text, f"a bad argument is a tool error ({bad.content[0].text})")
        check(bad.structured_content["error"]["reason"] == "unknown_field", "the tool error carries the REST error envelope")
        # What agents lean on: a dry run, several pages, only some fields.
        dry = await session.call_tool(
            "crisp_send_message_in_conversation",
            {"sessionID": "session_ci", "dry_run": True, "body": {"type": "text", "from": "operator", "origin": "chat", "content": "Hi"}},
        )
        check(not dry.is_error and data(dry)["dry_run"] is True and data(dry)["method"] == "POST", f"dry_run answers the request it would send ({dry.content[0].text[:200]})")
        check(tools["crisp_send_message_in_conversation"].input_schema["properties"]["dry_run"]["type"] == "boolean", "writes take dry_run")
        paged = await session.call_tool("crisp_list_conversations", {"pages": 2, "fields": ["session_id"]})
        check(not paged.is_error and isinstance(data(paged), list), f"pages and fields on a list ({paged.content[0].text[:200]})")
        narrow = await session.call_tool("crisp_get_conversation", {"sessionID": "session_ci", "fields": ["session_id"]})
        check(not narrow.is_error and set(data(narrow)) == {"session_id"}, f"fields keeps only the paths asked for ({narrow.content[0].text[:200]})")
        invalid = await session.call_tool("crisp_send_message_in_conversation", {"sessionID": "session_ci", "body": {"type": "text"}})
        check(invalid.is_error and invalid.structured_content["error"]["reason"] == "invalid_body", "a body that does not fit its type is invalid_body")

    await with_session("/mcp/all", calls)

    async def essentials_calls(session):
        sent = await session.call_tool("crisp_send_message", {"session_id": "session_ci", "content": "Hello"})
        check(not sent.is_error, f"crisp_send_message works with the connector's names ({sent.content[0].text[:200]})")
        archived = await session.call_tool("crisp_archive_conversation", {"session_id": "session_ci"})
        check(not archived.is_error, "crisp_archive_conversation works")

    await with_session("/mcp/essentials", essentials_calls)

    async def meta_calls(session):
        found = await session.call_tool("crisp_search_actions", {"query": "send message", "limit": 5})
        check(found.structured_content["actions"][0]["action"] == "send/message/in/conversation", "search finds actions by words")
        for words, action in [("reply to a customer", "send/message/in/conversation"), ("find a customer by email", "list/people/profiles"), ("archive", "change/conversation/state")]:
            ranked = [a["action"] for a in (await session.call_tool("crisp_search_actions", {"query": words, "limit": 5})).structured_content["actions"]]
            check(action in ranked, f"search understands {words!r} ({ranked})")
        called = await session.call_tool("crisp_call_action", {"action": "get/conversation", "arguments": {"sessionID": "session_ci"}})
        check(not called.is_error, f"crisp_call_action runs an action ({called.content[0].text[:200]})")
        accounts = await session.call_tool("crisp_list_accounts", {})
        check(not accounts.is_error and data(accounts)[0]["label"] == "main", "crisp_list_accounts lists the account")

    await with_session("/mcp", meta_calls)

    # A bad key: the SDK's initialize fails, and the HTTP answer is a 401 with the envelope.
    refusal = None
    try:
        await with_session("/mcp", list_names, key="sk_live_wrong")
    except Exception as e:  # the SDK wraps transport failures in exception groups
        refusal = e
    check(refusal is not None and "crisp-gateway key create" in flatten(refusal), f"a bad key is refused with the gateway's message ({flatten(refusal)})")
    async with httpx2.AsyncClient() as http:
        reply = await http.post(
            f"{BASE}/mcp",
            headers={"Authorization": "Bearer sk_live_wrong", "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        check(reply.status_code == 401 and reply.json()["error"]["data"]["error"]["reason"] == "unauthorized", "a bad key is a 401: a JSON-RPC error carrying the error envelope")
        one = await http.get(f"{BASE}/api/crisp/_endpoints/send/message/in/conversation")
        check(one.status_code == 200 and one.json()["body"]["type"] == "MessageNew", "_endpoints/<action> describes one action")
    print(f"{checks} checks passed")


async def size_cap():
    async def capped(session):
        whole = await session.call_tool("crisp_list_conversations", {"pageNumber": 1})
        cut = whole.structured_content.get("truncated")
        check(not whole.is_error and cut is not None, f"a list over the MCP limit is cut ({whole.content[0].text[:200]})")
        # The text is the kept items, then the note in words after a blank line.
        kept, _, note = whole.content[0].text.partition("\n\n")
        check(0 < cut["kept"] < cut["total"] and len(json.loads(kept)) == cut["kept"], f"the cut keeps whole items ({cut['kept']} of {cut['total']})")
        check("fields" in cut["note"] and "pageNumber" in cut["note"] and cut["note"] in note, f"the note says how to get the rest ({note[:200]})")
        narrow = await session.call_tool("crisp_list_conversations", {"pageNumber": 1, "fields": ["session_id", "state"]})
        check(not narrow.is_error and "truncated" not in narrow.structured_content and len(data(narrow)) == cut["total"], "asking for fewer fields brings every item under the limit")

    await with_session("/mcp/all", capped)
    print(f"{checks} checks passed")


asyncio.run(size_cap() if MODE == "size-cap" else main())
