"""Conversation ids (docs/protocol.md), their grammar in one place: `s_{small}_{large}`
for 1:1, `g_{group_id}` for groups."""

import re
from dataclasses import dataclass

_ID = "[1-9][0-9]{0,18}"  # a positive id that fits MySQL's BIGINT
_SINGLE = re.compile(rf"\As_({_ID})_({_ID})\Z")  # \Z: `$` also matches before a final "\n"
_GROUP = re.compile(rf"\Ag_({_ID})\Z")
MAX_LENGTH = 40
# The same grammar for schemas (OpenAPI, DRF's RegexField); parse_conversation_id adds a <= b.
PATTERN = rf"^(s_{_ID}_{_ID}|g_{_ID})$"
GRAMMAR = "s_{a}_{b} (a <= b) or g_{id}"  # how error messages state it


@dataclass(frozen=True)
class ConversationRef:
    conversation_id: str
    kind: str  # "single" or "group"
    user_ids: tuple[int, ...] = ()
    group_id: int | None = None

    def peer_of(self, user_id: int) -> int:
        a, b = self.user_ids
        return b if a == user_id else a


def parse_conversation_id(conversation_id: object) -> ConversationRef | None:
    """The parsed id, or None when it is not a well-formed conversation id."""
    if not isinstance(conversation_id, str) or len(conversation_id) > MAX_LENGTH:
        return None
    if m := _SINGLE.match(conversation_id):
        a, b = int(m[1]), int(m[2])
        if a > b:
            return None
        return ConversationRef(conversation_id, "single", user_ids=(a, b))
    if m := _GROUP.match(conversation_id):
        return ConversationRef(conversation_id, "group", group_id=int(m[1]))
    return None


def group_conversation_id(group_id: int) -> str:
    return f"g_{group_id}"
