from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gochat_project.api.caller import caller_id
from gochat_project.api.fields import StrictBooleanField, StrictCharField, StrictIntegerField
from gochat_project.api.pagination import ResultsNextPagination
from gochat_project.api.schema import ERROR
from groups import services
from groups.models import Group, GroupMember, Role
from groups.selectors import group_membership


class GroupSerializer(serializers.ModelSerializer):
    conversation_id = serializers.CharField(read_only=True)

    class Meta:
        model = Group
        fields = ["id", "name", "owner_id", "member_count", "conversation_id", "created_at"]


def group_name_field(*, required: bool) -> StrictCharField:
    return StrictCharField(min_length=1, max_length=64, required=required)


class GroupCreateInput(serializers.Serializer):
    name = group_name_field(required=True)
    member_ids = serializers.ListField(child=StrictIntegerField(min_value=1),
                                       max_length=services.MAX_IDS_PER_CALL, required=False, default=list)


class GroupUpdateInput(serializers.Serializer):
    """PATCH semantics, as the OpenAPI schema states them: an absent field is left as is."""

    name = group_name_field(required=False)


class MemberIdsInput(serializers.Serializer):
    user_ids = serializers.ListField(child=StrictIntegerField(min_value=1), min_length=1,
                                     max_length=services.MAX_IDS_PER_CALL)


class MemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = GroupMember
        fields = ["user_id", "role", "muted", "joined_at"]


class MemberUpdateInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=[Role.ADMIN, Role.MEMBER], required=False)
    muted = StrictBooleanField(required=False)


def _conflict(exc: services.Conflict) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


def _live_group_for_member(request: Request, group_id: int) -> Group:
    group = services.group_get_live(group_id=group_id)
    if group_membership(group_id=group.pk, user_id=caller_id(request)) is None and not request.user.is_staff:
        raise PermissionDenied("You are not a member of this group.")
    return group


class GroupListCreateView(APIView):
    @extend_schema(responses=GroupSerializer(many=True))
    def get(self, request: Request) -> Response:
        groups = Group.objects.filter(members__user_id=caller_id(request), dissolved=False).order_by("-id")[:1000]
        return Response(GroupSerializer(groups, many=True).data)

    @extend_schema(request=GroupCreateInput, responses={201: GroupSerializer})
    def post(self, request: Request) -> Response:
        data = GroupCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        group = services.group_create(owner_id=caller_id(request), **data.validated_data)
        return Response(GroupSerializer(group).data, status=status.HTTP_201_CREATED)


class GroupDetailView(APIView):
    @extend_schema(responses=GroupSerializer)
    def get(self, request: Request, group_id: int) -> Response:
        return Response(GroupSerializer(_live_group_for_member(request, group_id)).data)

    @extend_schema(request=GroupUpdateInput, responses=GroupSerializer)
    def patch(self, request: Request, group_id: int) -> Response:
        group = services.group_get_live(group_id=group_id)
        data = GroupUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        group = services.group_update(actor_id=caller_id(request), group=group, **data.validated_data)
        return Response(GroupSerializer(group).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, group_id: int) -> Response:
        services.group_dissolve(actor_id=caller_id(request), group=services.group_get_live(group_id=group_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberPagination(ResultsNextPagination):
    ordering = "user_id"  # served by the (group_id, user_id) unique index at any size
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"


class GroupMembersView(generics.ListAPIView):
    serializer_class = MemberSerializer
    pagination_class = MemberPagination

    def get_queryset(self) -> QuerySet[GroupMember]:
        group = _live_group_for_member(self.request, self.kwargs["group_id"])
        return GroupMember.objects.filter(group=group).only("user_id", "role", "muted", "joined_at")


    @extend_schema(request=MemberIdsInput, responses={200: inline_serializer("MembersAdded", {
        "added": serializers.ListField(child=serializers.IntegerField()),
        "member_count": serializers.IntegerField()})})
    def post(self, request: Request, group_id: int) -> Response:
        group = services.group_get_live(group_id=group_id)
        data = MemberIdsInput(data=request.data)
        data.is_valid(raise_exception=True)
        added = services.group_members_add(actor_id=caller_id(request), group=group, **data.validated_data)
        group.refresh_from_db(fields=["member_count"])
        return Response({"added": added, "member_count": group.member_count})


class GroupMemberView(APIView):
    @extend_schema(responses={204: None, 409: ERROR})
    def delete(self, request: Request, group_id: int, user_id: int) -> Response:
        group = services.group_get_live(group_id=group_id)
        try:
            services.group_member_remove(actor_id=caller_id(request), group=group, user_id=user_id)
        except services.Conflict as exc:
            return _conflict(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=MemberUpdateInput, responses=MemberSerializer)
    def patch(self, request: Request, group_id: int, user_id: int) -> Response:
        group = services.group_get_live(group_id=group_id)
        data = MemberUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        member = services.group_member_update(actor_id=caller_id(request), group=group, user_id=user_id,
                                              **data.validated_data)
        return Response(MemberSerializer(member).data)
