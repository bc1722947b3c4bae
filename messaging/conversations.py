"""Conversation ids (PROTOCOL.md): `s_{small}_{large}` for 1:1, `g_{group_id}` for groups."""

import re
from dataclasses import dataclass

_SINGLE = re.compile(r"\As_([1-9][0-9]{0,18})_([1-9][0-9]{0,18})\Z")  # \Z: `$` also matches before a final "\n"
_GROUP = re.compile(r"\Ag_([1-9][0-9]{0,18})\Z")


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
    if not isinstance(conversation_id, str) or len(conversation_id) > 40:
        return None
    if m := _SINGLE.match(conversation_id):
        a, b = int(m[1]), int(m[2])
        if a > b:
            return None
        return ConversationRef(conversation_id, "single", user_ids=(a, b))
    if m := _GROUP.match(conversation_id):
        return ConversationRef(conversation_id, "group", group_id=int(m[1]))
    return None


def single_conversation_id(user_a: int, user_b: int) -> str:
    small, large = sorted((user_a, user_b))
    return f"s_{small}_{large}"
