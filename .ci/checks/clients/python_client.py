"""The openapi-python-client package (default options) against the gateway (see clients.sh).

Every value read below is typed by the generated models; `mypy --strict` checks this file
together with the package, with no casts and no `Any`.
"""

import os

from crisp_gateway_client import AuthenticatedClient
from crisp_gateway_client.api.conversations import (
    crisp_create_new_conversation,
    crisp_get_conversation,
    crisp_list_conversations,
    crisp_send_message_in_conversation,
)
from crisp_gateway_client.api.people import (
    crisp_add_new_people_profile,
    crisp_get_people_profile,
)
from crisp_gateway_client.models import (
    AddNewPeopleProfileRequest,
    AddNewPeopleProfileResponse,
    ConversationListQuery,
    CreateNewConversationRequest,
    CreateNewConversationResponse,
    ErrorEnvelope,
    GetConversationRequest,
    GetConversationResponse,
    GetPeopleProfileRequest,
    GetPeopleProfileResponse,
    ListConversationsRequest,
    ListConversationsResponse,
    MessageFrom,
    MessageNew,
    MessageType,
    PeoplePerson,
    PeopleProfileNew,
    SendMessageInConversationRequest,
    SendMessageInConversationResponse,
)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"python client: FAILED: {what}")


client = AuthenticatedClient(base_url=os.environ["GATEWAY"], token=os.environ["KEY"])

# The README's example: `{"query":{"per_page":20}}`.
listed = crisp_list_conversations.sync(
    client=client, body=ListConversationsRequest(query=ConversationListQuery(per_page=20))
)
check(isinstance(listed, ListConversationsResponse), f"list/conversations: {listed}")
assert isinstance(listed, ListConversationsResponse)
before = len(listed.result)

created = crisp_create_new_conversation.sync(client=client, body=CreateNewConversationRequest())
assert isinstance(created, CreateNewConversationResponse), created
session_id = created.result.session_id
assert isinstance(session_id, str), created.result
check(session_id.startswith("session_"), f"create/new/conversation gave a session_id ({session_id})")

message = MessageNew(
    type_=MessageType.TEXT, from_=MessageFrom.OPERATOR, origin="chat", content="Hello from Python"
)
sent = crisp_send_message_in_conversation.sync(
    client=client, body=SendMessageInConversationRequest(session_id=session_id, body=message)
)
check(isinstance(sent, SendMessageInConversationResponse), f"send/message/in/conversation: {sent}")

got = crisp_get_conversation.sync(client=client, body=GetConversationRequest(session_id=session_id))
assert isinstance(got, GetConversationResponse), got
check(got.result.session_id == session_id, "get/conversation reads it back")

again = crisp_list_conversations.sync(
    client=client, body=ListConversationsRequest(query=ConversationListQuery(per_page=20))
)
assert isinstance(again, ListConversationsResponse), again
check(len(again.result) == before + 1, "list/conversations shows it")

added = crisp_add_new_people_profile.sync(
    client=client,
    body=AddNewPeopleProfileRequest(
        body=PeopleProfileNew(email="ada.py@example.com", person=PeoplePerson(nickname="Ada Py"))
    ),
)
assert isinstance(added, AddNewPeopleProfileResponse), added
people_id = added.result.people_id
assert isinstance(people_id, str), added.result

profile = crisp_get_people_profile.sync(client=client, body=GetPeopleProfileRequest(people_id=people_id))
assert isinstance(profile, GetPeopleProfileResponse), profile
person = profile.result.person
nickname = person.nickname if isinstance(person, PeoplePerson) else None
check(nickname == "Ada Py", f"get/people/profile reads the nickname ({nickname})")

unauthorized = crisp_list_conversations.sync(
    client=AuthenticatedClient(base_url=os.environ["GATEWAY"], token="sk_live_wrong"),
    body=ListConversationsRequest(),
)
assert isinstance(unauthorized, ErrorEnvelope), unauthorized
check(unauthorized.error.reason == "unauthorized", "a wrong key is a typed 401")
print("python client: list, create, send, get and profile calls typed and answered")
