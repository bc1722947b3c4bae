"""The authorization matrix of /admin/: every admin page and action against every kind
of caller, with the answer each must get and its effect on the rows.

Roles (columns): anonymous, plain (a registered, non-staff user), moderator (made by
`create_moderator --promote`) and superuser. Django's admin sends anonymous and plain
users to the login page from every view, and nothing changes: those two columns are
the same on every row, so the table spells out the moderator's and superuser's.

Answers: OK 200; DENIED 403; DONE 302 after a POST Django accepted (an action always
answers so, run or not: the row says whether it ran); GONE 302 to the admin index,
Django's answer for an object outside the admin's queryset (a moderator never finds
a staff or superuser account, their own included); LOGIN 302 to the login page.

Each cell gets rows of its own (targets, a group, a message), made straight in the
test database, and requests go through Django's test client in this process."""

import io
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from tests.client import PASSWORD

pytestmark = pytest.mark.usefixtures("stack")  # recall goes through Kafka to logic

ROLES = ("anonymous", "plain", "moderator", "superuser")
OK, DENIED, DONE, GONE, LOGIN = "200", "403", "302 done", "302 gone", "302 login"
NEW_PASSWORD = "Fresh-st4ple-for-matrix"


@dataclass
class Ctx:
    """One cell's rows. `actor` is the acting user (anonymous: a user who is not logged in)."""

    actor: Any
    ordinary: Any  # a plain user, member of `group`, sender of `message`
    staff: Any  # is_staff, not a superuser
    superuser: Any  # another superuser
    group: Any
    member: Any  # ordinary's membership of `group`
    message: Any
    token: Any  # an outstanding refresh token of ordinary
    moderators: Any  # the auth group `create_moderator` fills
    tag: str  # in every username of the cell

    @property
    def new_username(self) -> str:
        return f"amnew{self.tag}"

    def ids(self) -> dict[str, Any]:
        return {"ordinary": self.ordinary.pk, "staff": self.staff.pk, "superuser": self.superuser.pk,
                "self": self.actor.pk, "group": self.group.pk, "member": self.member.pk,
                "message": self.message.pk, "token": self.token.pk, "moderators": self.moderators.pk}


def fresh(obj: Any) -> Any:
    return type(obj).objects.get(pk=obj.pk)


def exists(obj: Any) -> bool:
    return type(obj).objects.filter(pk=obj.pk).exists()


@pytest.fixture(scope="module")
def password_hash(django_db_blocker: Any) -> str:
    from django.contrib.auth.hashers import make_password

    return make_password(PASSWORD)  # once: hashing per cell would only make the matrix slow


@pytest.fixture
def db_access(django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        yield


def make_user(username: str, password_hash: str = "", **flags: bool) -> Any:
    from accounts.models import User

    return User.objects.create(username=username, nickname=username, password=password_hash, **flags)


def make_ctx(role: str, password_hash: str) -> Ctx:
    from django.core.management import call_command
    from django.utils import timezone
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    from accounts.management.commands.create_moderator import moderators_group
    from groups.models import Group, GroupMember, Role
    from messaging.models import Message

    tag = uuid.uuid4().hex[:10]
    actor = make_user(f"amactor{tag}", is_superuser=role == "superuser", is_staff=role == "superuser")
    if role == "moderator":
        call_command("create_moderator", actor.username, "--promote", stdout=io.StringIO())
        actor = fresh(actor)
    ordinary = make_user(f"amordinary{tag}", password_hash)
    owner = make_user(f"amowner{tag}")
    group = Group.objects.create(name=f"matrix {tag}", owner=owner, member_count=2)
    GroupMember.objects.create(group=group, user=owner, role=Role.OWNER)
    now = timezone.now()
    return Ctx(
        actor=actor, ordinary=ordinary,
        staff=make_user(f"amstaff{tag}", password_hash, is_staff=True),
        superuser=make_user(f"amsuper{tag}", password_hash, is_staff=True, is_superuser=True),
        group=group, member=GroupMember.objects.create(group=group, user=ordinary),
        message=Message.objects.create(message_id=uuid.uuid4().int >> 66, conversation_id=group.conversation_id,
                                       seq=1, sender=ordinary, body="hello", client_msg_id=tag,
                                       ts=int(time.time() * 1000)),
        token=OutstandingToken.objects.create(user=ordinary, jti=uuid.uuid4().hex, token=f"matrix.{tag}",
                                              created_at=now, expires_at=now + timedelta(days=1)),
        moderators=moderators_group(), tag=tag)


def client_for(role: str, ctx: Ctx) -> Client:
    client = Client()
    if role != "anonymous":
        client.force_login(ctx.actor)
    return client


# --- request bodies -----------------------------------------------------------------


def user_form(user: Any, **changes: Any) -> dict[str, Any]:
    """The user change form as a superuser sees it, filled from the row, with `changes`
    (a False flag is an unticked box). A moderator posting it gets only the nickname read."""
    values = {"username": user.username, "nickname": user.nickname, "is_active": user.is_active,
              "is_staff": user.is_staff, "is_superuser": user.is_superuser, **changes}
    data = {k: v for k, v in values.items() if not isinstance(v, bool)}
    data.update({k: "on" for k, v in values.items() if v is True})
    data.update({"first_name": "", "last_name": "", "email": "", "date_joined_0": "2024-01-02",
                 "date_joined_1": "03:04:05", "last_login_0": "", "last_login_1": ""})
    return data


def action(name: str, target: str, **extra: str) -> Callable[[Ctx], dict[str, Any]]:
    def body(c: Ctx) -> dict[str, Any]:
        return {"action": name, "_selected_action": [str(c.ids()[target])], "index": "0",
                "reason": "matrix", **extra}

    return body


def deactivate(who: str) -> Callable[[Ctx], None]:
    return lambda c: type(c.ordinary).objects.filter(pk=getattr(c, who).pk).update(is_active=False)


def set_member(**changes: Any) -> Callable[[Ctx], None]:
    return lambda c: type(c.member).objects.filter(pk=c.member.pk).update(**changes)


# --- the matrix -----------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    name: str
    path: str  # formatted with Ctx.ids()
    moderator: str
    superuser: str
    data: Callable[[Ctx], dict[str, Any]] | None = None  # POST this; GET without
    holds: Callable[[Ctx], bool] | None = None  # a fact about the rows, read before and after
    after: tuple[bool, bool] | None = None  # holds afterwards for (moderator, superuser); others: unchanged
    setup: Callable[[Ctx], None] | None = None

    def expect(self, role: str) -> str:
        return {"moderator": self.moderator, "superuser": self.superuser}.get(role, LOGIN)


U = "/admin/accounts/user"
PAGES = [
    Page("index", "/admin/", OK, OK),
    Page("own password change", "/admin/password_change/", OK, OK),
    # changelists
    Page("users", f"{U}/", OK, OK),
    Page("messages", "/admin/messaging/message/", OK, OK),
    Page("groups", "/admin/groups/group/", OK, OK),
    Page("group members", "/admin/groups/groupmember/", OK, OK),
    Page("auth groups", "/admin/auth/group/", DENIED, OK),
    Page("outstanding tokens", "/admin/token_blacklist/outstandingtoken/", DENIED, OK),
    Page("blacklisted tokens", "/admin/token_blacklist/blacklistedtoken/", DENIED, OK),
    # users: view, change
    Page("user form: ordinary", U + "/{ordinary}/change/", OK, OK),
    Page("user form: staff", U + "/{staff}/change/", GONE, OK),
    Page("user form: superuser", U + "/{superuser}/change/", GONE, OK),
    Page("user form: self", U + "/{self}/change/", GONE, OK),
    Page("user POST: ordinary's nickname", U + "/{ordinary}/change/", DONE, DONE,
         data=lambda c: user_form(c.ordinary, nickname="renamed"),
         holds=lambda c: fresh(c.ordinary).nickname == "renamed", after=(True, True)),
    Page("user POST: ordinary made superuser", U + "/{ordinary}/change/", DONE, DONE,
         data=lambda c: user_form(c.ordinary, is_staff=True, is_superuser=True),
         holds=lambda c: fresh(c.ordinary).is_superuser or fresh(c.ordinary).is_staff, after=(False, True)),
    Page("user POST: ordinary deactivated (ban is the action)", U + "/{ordinary}/change/", DONE, DONE,
         data=lambda c: user_form(c.ordinary, is_active=False),
         holds=lambda c: not fresh(c.ordinary).is_active, after=(False, True)),
    Page("user POST: ordinary renamed (username)", U + "/{ordinary}/change/", DONE, DONE,
         data=lambda c: user_form(c.ordinary, username=c.new_username),
         holds=lambda c: fresh(c.ordinary).username == c.new_username, after=(False, True)),
    Page("user POST: staff", U + "/{staff}/change/", GONE, DONE,
         data=lambda c: user_form(c.staff, nickname="renamed", is_active=False),
         holds=lambda c: not fresh(c.staff).is_active, after=(False, True)),
    Page("user POST: superuser deactivated", U + "/{superuser}/change/", GONE, DONE,
         data=lambda c: user_form(c.superuser, is_active=False),
         holds=lambda c: not fresh(c.superuser).is_active, after=(False, True)),
    Page("user POST: self made superuser", U + "/{self}/change/", GONE, DONE,
         data=lambda c: user_form(c.actor, is_staff=True, is_superuser=True),
         holds=lambda c: fresh(c.actor).is_superuser, after=(False, True)),
    # users: add, delete, history, password
    Page("user add form", f"{U}/add/", DENIED, OK),
    Page("user add POST", f"{U}/add/", DENIED, DONE,
         data=lambda c: {"username": c.new_username, "usable_password": "true", "password1": NEW_PASSWORD,
                         "password2": NEW_PASSWORD},
         holds=lambda c: type(c.ordinary).objects.filter(username=c.new_username).exists(), after=(False, True)),
    Page("user delete: ordinary", U + "/{ordinary}/delete/", DENIED, OK),
    Page("user delete: superuser", U + "/{superuser}/delete/", DENIED, OK),
    Page("user delete POST: ordinary", U + "/{ordinary}/delete/", DENIED, DONE, data=lambda c: {"post": "yes"},
         holds=lambda c: exists(c.ordinary), after=(True, False)),
    Page("user history: ordinary", U + "/{ordinary}/history/", OK, OK),
    Page("user history: superuser", U + "/{superuser}/history/", GONE, OK),
    Page("password page: ordinary", U + "/{ordinary}/password/", DENIED, OK),
    Page("password page: superuser", U + "/{superuser}/password/", DENIED, OK),
    Page("password page: self", U + "/{self}/password/", DENIED, OK),
    Page("password POST: ordinary", U + "/{ordinary}/password/", DENIED, DONE,
         data=lambda c: {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
         holds=lambda c: fresh(c.ordinary).check_password(PASSWORD), after=(True, False)),
    Page("password POST: superuser", U + "/{superuser}/password/", DENIED, DONE,
         data=lambda c: {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
         holds=lambda c: fresh(c.superuser).check_password(PASSWORD), after=(True, False)),
    # user actions
    Page("ban: ordinary", f"{U}/", DONE, DONE, data=action("ban", "ordinary"),
         holds=lambda c: not fresh(c.ordinary).is_active, after=(True, True)),
    Page("ban: staff", f"{U}/", DONE, DONE, data=action("ban", "staff"),
         holds=lambda c: not fresh(c.staff).is_active, after=(False, True)),
    Page("ban: superuser", f"{U}/", DONE, DONE, data=action("ban", "superuser"),
         holds=lambda c: not fresh(c.superuser).is_active, after=(False, True)),
    Page("unban: ordinary", f"{U}/", DONE, DONE, data=action("unban", "ordinary"), setup=deactivate("ordinary"),
         holds=lambda c: fresh(c.ordinary).is_active, after=(True, True)),
    Page("unban: staff", f"{U}/", DONE, DONE, data=action("unban", "staff"), setup=deactivate("staff"),
         holds=lambda c: fresh(c.staff).is_active, after=(False, True)),
    Page("unban: superuser", f"{U}/", DONE, DONE, data=action("unban", "superuser"), setup=deactivate("superuser"),
         holds=lambda c: fresh(c.superuser).is_active, after=(False, True)),
    Page("delete_selected: ordinary", f"{U}/", DONE, DONE, data=action("delete_selected", "ordinary", post="yes"),
         holds=lambda c: exists(c.ordinary), after=(True, False)),
    # the auth groups (where a moderator's permissions live)
    Page("auth group form: moderators", "/admin/auth/group/{moderators}/change/", DENIED, OK),
    Page("auth group POST: moderators may delete users", "/admin/auth/group/{moderators}/change/", DENIED, DONE,
         data=lambda c: {"name": c.moderators.name, "permissions": [
             *c.moderators.permissions.values_list("pk", flat=True), delete_user_permission().pk]},
         holds=lambda c: c.moderators.permissions.filter(codename="delete_user").exists(), after=(False, True)),
    Page("auth group add", "/admin/auth/group/add/", DENIED, OK),
    # token_blacklist: read-only for everyone, invisible to moderators
    Page("outstanding token", "/admin/token_blacklist/outstandingtoken/{token}/change/", DENIED, OK),
    Page("outstanding token POST", "/admin/token_blacklist/outstandingtoken/{token}/change/", DENIED, DENIED,
         data=lambda c: {"jti": "changed"}, holds=lambda c: fresh(c.token).jti == "changed", after=(False, False)),
    Page("blacklisted token add", "/admin/token_blacklist/blacklistedtoken/add/", DENIED, OK),
    # messages: a moderator views and recalls, never edits
    Page("message form", "/admin/messaging/message/{message}/change/", OK, OK),
    Page("message POST: body edited", "/admin/messaging/message/{message}/change/", DENIED, DONE,
         data=lambda c: {"kind": "text", "body": "edited", "extra": "{}"},
         holds=lambda c: fresh(c.message).body == "edited", after=(False, True)),
    Page("message add", "/admin/messaging/message/add/", DENIED, DENIED),
    Page("message delete", "/admin/messaging/message/{message}/delete/", DENIED, OK),
    Page("message delete POST", "/admin/messaging/message/{message}/delete/", DENIED, DONE,
         data=lambda c: {"post": "yes"}, holds=lambda c: exists(c.message), after=(True, False)),
    Page("message history", "/admin/messaging/message/{message}/history/", OK, OK),
    Page("recall", "/admin/messaging/message/", DONE, DONE, data=action("recall", "message"),
         holds=lambda c: fresh(c.message).recalled and fresh(c.message).body == "", after=(True, True)),
    # groups: rename and dissolve; the owner is a superuser's to change
    Page("group form", "/admin/groups/group/{group}/change/", OK, OK),
    Page("group POST: renamed", "/admin/groups/group/{group}/change/", DONE, DONE,
         data=lambda c: {"name": "renamed", "owner": str(c.group.owner_id)},
         holds=lambda c: fresh(c.group).name == "renamed", after=(True, True)),
    Page("group POST: new owner", "/admin/groups/group/{group}/change/", DONE, DONE,
         data=lambda c: {"name": c.group.name, "owner": str(c.ordinary.pk)},
         holds=lambda c: fresh(c.group).owner_id == c.ordinary.pk, after=(False, True)),
    Page("group add", "/admin/groups/group/add/", DENIED, OK),
    Page("group delete", "/admin/groups/group/{group}/delete/", DENIED, OK),
    Page("group delete POST", "/admin/groups/group/{group}/delete/", DENIED, DONE,
         data=lambda c: {"post": "yes"}, holds=lambda c: exists(c.group), after=(True, False)),
    Page("group history", "/admin/groups/group/{group}/history/", OK, OK),
    Page("dissolve", "/admin/groups/group/", DONE, DONE, data=action("dissolve", "group"),
         holds=lambda c: fresh(c.group).dissolved, after=(True, True)),
    # group members: changed through the actions only, by everyone
    Page("member form", "/admin/groups/groupmember/{member}/change/", OK, OK),
    Page("member POST", "/admin/groups/groupmember/{member}/change/", DENIED, DENIED,
         data=lambda c: {"group": str(c.group.pk), "user": str(c.ordinary.pk), "role": "admin", "joined_seq": "0"},
         holds=lambda c: fresh(c.member).role == "admin", after=(False, False)),
    Page("member add", "/admin/groups/groupmember/add/", DENIED, OK),
    Page("member delete", "/admin/groups/groupmember/{member}/delete/", DENIED, OK),
    Page("member history", "/admin/groups/groupmember/{member}/history/", OK, OK),
    Page("mute", "/admin/groups/groupmember/", DONE, DONE, data=action("mute", "member"),
         holds=lambda c: fresh(c.member).muted, after=(True, True)),
    Page("unmute", "/admin/groups/groupmember/", DONE, DONE, data=action("unmute", "member"),
         setup=set_member(muted=True), holds=lambda c: not fresh(c.member).muted, after=(True, True)),
    Page("make_admin", "/admin/groups/groupmember/", DONE, DONE, data=action("make_admin", "member"),
         holds=lambda c: fresh(c.member).role == "admin", after=(True, True)),
    Page("make_member", "/admin/groups/groupmember/", DONE, DONE, data=action("make_member", "member"),
         setup=set_member(role="admin"), holds=lambda c: fresh(c.member).role == "member", after=(True, True)),
]


def delete_user_permission() -> Any:
    from django.contrib.auth.models import Permission

    return Permission.objects.get(content_type__app_label="accounts", codename="delete_user")


def answer(response: Any) -> str:
    if response.status_code != 302:
        return str(response.status_code)
    location = response["Location"]
    if location.startswith("/admin/login/"):
        return LOGIN
    return GONE if location == "/admin/" else DONE


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_admin_matrix(page: Page, role: str, password_hash: str, db_access: None) -> None:
    ctx = make_ctx(role, password_hash)
    if page.setup is not None:
        page.setup(ctx)
    before = page.holds(ctx) if page.holds is not None else None
    path = page.path.format(**ctx.ids())
    client = client_for(role, ctx)
    response = client.post(path, page.data(ctx)) if page.data is not None else client.get(path)
    assert answer(response) == page.expect(role), (response.status_code, response.get("Location"))
    if page.holds is not None:
        assert page.after is not None
        expected = {"moderator": page.after[0], "superuser": page.after[1]}.get(role, before)
        assert page.holds(ctx) == expected


# --- what the table cannot say in one cell ---------------------------------------------


def test_moderator_user_list_hides_staff_and_superusers(password_hash: str, db_access: None) -> None:
    for role, shown in (("moderator", {"ordinary"}), ("superuser", {"ordinary", "staff", "super", "actor"})):
        ctx = make_ctx(role, password_hash)
        listed = client_for(role, ctx).get(f"{U}/", {"q": ctx.tag}).context["cl"].result_list
        assert {u.username.removeprefix("am").removesuffix(ctx.tag) for u in listed} - {"owner"} == shown, role


def test_moderator_user_form_offers_only_the_nickname(password_hash: str, db_access: None) -> None:
    ctx = make_ctx("moderator", password_hash)
    response = client_for("moderator", ctx).get(f"{U}/{ctx.ordinary.pk}/change/")
    form = response.context["adminform"].form
    assert [name for name in form.fields if not form.fields[name].disabled] == ["nickname"]
    page = response.content.decode()
    for hidden in ("is_superuser", "is_staff", "user_permissions", "id_groups", "../password/"):
        assert hidden not in page, hidden
    superuser = make_ctx("superuser", password_hash)
    full = client_for("superuser", superuser).get(f"{U}/{superuser.ordinary.pk}/change/").context["adminform"]
    assert {"is_superuser", "is_staff", "groups", "user_permissions", "nickname"} <= set(full.form.fields)


@pytest.mark.parametrize(("model", "moderator", "superuser"), [
    ("accounts.User", {"ban", "unban"}, {"ban", "unban", "delete_selected"}),
    ("messaging.Message", {"recall"}, {"recall", "delete_selected"}),
    ("groups.Group", {"dissolve"}, {"dissolve", "delete_selected"}),
    ("groups.GroupMember", {"mute", "unmute", "make_admin", "make_member"},
     {"mute", "unmute", "make_admin", "make_member", "delete_selected"}),
])
def test_each_role_is_offered_only_its_actions(model: str, moderator: set[str], superuser: set[str],
                                               password_hash: str, db_access: None) -> None:
    from django.apps import apps
    from django.contrib import admin
    from django.test import RequestFactory

    model_admin = admin.site._registry[apps.get_model(model)]
    for role, expected in (("moderator", moderator), ("superuser", superuser)):
        request = RequestFactory().get("/admin/")
        request.user = make_ctx(role, password_hash).actor
        assert set(model_admin.get_actions(request)) == expected, role


def test_ban_and_unban_refuse_staff_accounts_even_when_handed_them(password_hash: str, db_access: None) -> None:
    """The actions themselves skip staff and superusers for a moderator, whatever
    queryset reaches them (not only the changelist's filtered one)."""
    from django.contrib import admin
    from django.test import RequestFactory

    from accounts.models import User

    ctx = make_ctx("moderator", password_hash)
    user_admin = admin.site._registry[User]
    request = RequestFactory().post("/admin/accounts/user/", {"reason": "matrix"})
    request.user = ctx.actor
    targets = User.objects.filter(pk__in=[ctx.ordinary.pk, ctx.staff.pk, ctx.superuser.pk, ctx.actor.pk])

    def active() -> dict[str, bool]:
        return {u.username.removeprefix("am").removesuffix(ctx.tag): u.is_active for u in targets.all()}

    user_admin.ban(request, targets.all())
    assert active() == {"ordinary": False, "staff": True, "super": True, "actor": True}
    User.objects.filter(pk__in=[ctx.staff.pk, ctx.superuser.pk]).update(is_active=False)
    user_admin.unban(request, targets.all())
    assert active() == {"ordinary": True, "staff": False, "super": False, "actor": True}


def test_member_actions_and_recall_skip_staff_and_the_moderator_itself(password_hash: str, db_access: None) -> None:
    """A moderator in a group does not make itself the group's admin, and does not mute,
    demote or recall staff and superusers; a superuser may."""
    from django.contrib import admin
    from django.test import RequestFactory

    from groups.models import GroupMember, Role
    from messaging.models import Message

    for role, staff_touched in (("moderator", False), ("superuser", True)):
        ctx = make_ctx(role, password_hash)
        request = RequestFactory().post("/admin/", {"reason": "matrix"})
        request.user = ctx.actor
        members = [GroupMember.objects.create(group=ctx.group, user=u) for u in (ctx.actor, ctx.staff, ctx.superuser)]
        member_admin = admin.site._registry[GroupMember]
        member_admin.make_admin(request, GroupMember.objects.filter(pk__in=[ctx.member.pk, *(m.pk for m in members)]))
        roles = {m.user_id: m.role for m in GroupMember.objects.filter(group=ctx.group)}
        assert roles[ctx.member.user_id] == Role.ADMIN  # the ordinary member: moderated
        assert {roles[m.user_id] for m in members} == {Role.ADMIN if staff_touched else Role.MEMBER}, role

        staff_message = Message.objects.create(
            message_id=uuid.uuid4().int >> 66, conversation_id=ctx.group.conversation_id, seq=2,
            sender=ctx.superuser, body="staff", client_msg_id=ctx.tag + "s", ts=int(time.time() * 1000))
        admin.site._registry[Message].recall(request, Message.objects.filter(pk__in=[staff_message.pk]))
        assert Message.objects.get(pk=staff_message.pk).recalled is staff_touched, role
