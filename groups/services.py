"""Group writes: create, rename, membership, roles, mute, dissolve. Every membership
change drops logic's cached member list (after commit, so logic never re-caches the old list)."""

from django.db import transaction
from django.db.models import F
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from accounts.models import User
from groups.models import Group, GroupMember, Role
from groups.selectors import group_cache_invalidate
from messaging.selectors import conversation_max_seq

MAX_IDS_PER_CALL = 1000


class Conflict(Exception):
    """The change contradicts the group's state (e.g. the owner leaving)."""


def _check_user_ids(user_ids: list[int]) -> list[int]:
    ids = list(dict.fromkeys(user_ids))  # duplicates ignored, order kept
    if len(ids) > MAX_IDS_PER_CALL:
        raise ValidationError({"user_ids": [f"At most {MAX_IDS_PER_CALL} ids per call."]})
    found = set(User.objects.filter(pk__in=ids, is_active=True).values_list("id", flat=True))
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise ValidationError({"user_ids": [f"Unknown or inactive users: {unknown[:20]}"]})
    return ids


def _membership(group: Group, user_id: int) -> GroupMember | None:
    return GroupMember.objects.filter(group=group, user_id=user_id).first()


def _require_role(group: Group, user_id: int, roles: set[str]) -> GroupMember:
    member = _membership(group, user_id)
    if member is None:
        raise PermissionDenied("You are not a member of this group.")
    if member.role not in roles:
        raise PermissionDenied(f"Only the group's {' or '.join(sorted(roles))} may do this.")
    return member


def _on_commit_invalidate(group_id: int) -> None:
    transaction.on_commit(lambda: group_cache_invalidate(group_id))


def group_create(*, owner_id: int, name: str, member_ids: list[int]) -> Group:
    ids = [i for i in _check_user_ids(member_ids) if i != owner_id]
    with transaction.atomic():
        group = Group.objects.create(name=name, owner_id=owner_id, member_count=len(ids) + 1)
        GroupMember.objects.bulk_create(
            [GroupMember(group=group, user_id=owner_id, role=Role.OWNER)]
            + [GroupMember(group=group, user_id=i, role=Role.MEMBER) for i in ids]
        )
    return group


def group_update(*, actor_id: int, group: Group, name: str | None = None) -> Group:
    """Rename (owner or admin); an absent field is left as is. Logic's cache holds no
    names, so nothing is invalidated: readers take the name from MySQL. Every member's
    devices get `group_updated` (through logic, after the commit)."""
    from messaging.gateway import upstream

    _require_role(group, actor_id, {Role.OWNER, Role.ADMIN})
    if name is None:
        return group
    if not Group.objects.filter(pk=group.pk, dissolved=False).update(name=name):
        raise NotFound("No such group.")  # dissolved since it was read
    group.name = name
    conversation_id = group.conversation_id
    transaction.on_commit(lambda: upstream.upstream_group_update(conversation_id=conversation_id, name=name))
    return group


def group_get_live(*, group_id: int) -> Group:
    group = Group.objects.filter(pk=group_id, dissolved=False).first()
    if group is None:
        raise NotFound("No such group.")
    return group


def group_members_add(*, actor_id: int, group: Group, user_ids: list[int]) -> list[int]:
    """Add members (owner/admin). Their history starts at the group's current seq. Returns the added ids."""
    _require_role(group, actor_id, {Role.OWNER, Role.ADMIN})
    ids = _check_user_ids(user_ids)
    joined_seq = conversation_max_seq(conversation_id=group.conversation_id)
    with transaction.atomic():
        present = set(GroupMember.objects.filter(group=group, user_id__in=ids).values_list("user_id", flat=True))
        new = [i for i in ids if i not in present]
        GroupMember.objects.bulk_create([GroupMember(group=group, user_id=i, joined_seq=joined_seq) for i in new],
                                        ignore_conflicts=True)
        Group.objects.filter(pk=group.pk).update(member_count=F("member_count") + len(new))
        _on_commit_invalidate(group.pk)
    return new


def group_member_remove(*, actor_id: int, group: Group, user_id: int) -> None:
    """Owner/admin remove a member; any member may remove themself (leave)."""
    target = _membership(group, user_id)
    if actor_id != user_id:
        actor = _require_role(group, actor_id, {Role.OWNER, Role.ADMIN})
        if target is None:
            raise NotFound("Not a member.")
        if target.role == Role.OWNER or (target.role == Role.ADMIN and actor.role != Role.OWNER):
            raise PermissionDenied("Only the owner may remove an admin, and nobody the owner.")
    elif target is None:
        raise NotFound("Not a member.")
    if target.role == Role.OWNER:
        raise Conflict("The owner cannot leave; dissolve the group instead.")
    with transaction.atomic():
        deleted, _ = GroupMember.objects.filter(pk=target.pk).delete()
        Group.objects.filter(pk=group.pk).update(member_count=F("member_count") - deleted)
        _on_commit_invalidate(group.pk)


def group_member_update(*, actor_id: int, group: Group, user_id: int, role: str | None = None,
                        muted: bool | None = None) -> GroupMember:
    """Role changes (owner only: admin <-> member) and mute (owner/admin; never the owner)."""
    target = _membership(group, user_id)
    if target is None:
        raise NotFound("Not a member.")
    if role is not None:
        _require_role(group, actor_id, {Role.OWNER})
        if role not in (Role.ADMIN, Role.MEMBER) or target.role == Role.OWNER:
            raise ValidationError({"role": ["Role must be admin or member, and the owner's role cannot change."]})
        target.role = role
    if muted is not None:
        actor = _require_role(group, actor_id, {Role.OWNER, Role.ADMIN})
        if target.role == Role.OWNER or (target.role == Role.ADMIN and actor.role != Role.OWNER):
            raise PermissionDenied("Only the owner may mute an admin, and nobody the owner.")
        target.muted = muted
    with transaction.atomic():
        target.save(update_fields=["role", "muted"])
        _on_commit_invalidate(group.pk)
    return target


def group_dissolve(*, actor_id: int, group: Group) -> None:
    _require_role(group, actor_id, {Role.OWNER})
    group_dissolve_moderated(group=group)


def group_dissolve_moderated(*, group: Group) -> None:
    """Dissolve a group; called by group_dissolve after its owner check, or by a moderator."""
    with transaction.atomic():
        Group.objects.filter(pk=group.pk).update(dissolved=True)
        _on_commit_invalidate(group.pk)


def group_member_moderate(*, member: GroupMember, role: str | None = None, muted: bool | None = None) -> None:
    """A moderator changes a member's role or mute (never the owner's)."""
    if member.role == Role.OWNER:
        raise Conflict("The owner's role and mute cannot change.")
    if role is not None:
        member.role = role
    if muted is not None:
        member.muted = muted
    with transaction.atomic():
        member.save(update_fields=["role", "muted"])
        _on_commit_invalidate(member.group_id)
