from django.urls import path

from groups.api import views

urlpatterns = [
    path("groups", views.GroupListCreateView.as_view()),
    path("groups/<int:group_id>", views.GroupDetailView.as_view()),
    path("groups/<int:group_id>/members", views.GroupMembersView.as_view()),
    path("groups/<int:group_id>/members/<int:user_id>", views.GroupMemberView.as_view()),
]
