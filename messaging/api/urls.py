from django.urls import path

from messaging.api import search, views

urlpatterns = [
    path("conversations", views.ConversationListView.as_view()),
    path("conversations/<str:conversation_id>", views.ConversationPrefsView.as_view()),
    path("conversations/<str:conversation_id>/messages", views.ConversationMessagesView.as_view()),
    path("conversations/<str:conversation_id>/read", views.ConversationReadView.as_view()),
    path("messages", views.MessageSendView.as_view()),
    path("messages/<int:message_id>", views.MessageHideView.as_view()),
    path("messages/<int:message_id>/recall", views.MessageRecallView.as_view()),
    path("messages/<int:message_id>/edit", views.MessageEditView.as_view()),
    path("search", search.SearchView.as_view()),
]
