from django.urls import path

from accounts.api import views

urlpatterns = [
    path("auth/register", views.RegisterView.as_view()),
    path("auth/login", views.LoginView.as_view()),
    path("auth/refresh", views.RefreshView.as_view()),
    path("auth/logout", views.LogoutView.as_view()),
    path("auth/password", views.PasswordChangeView.as_view()),
    path("users/me", views.MeView.as_view()),
    path("users", views.UserSearchView.as_view()),
    path("users/blocked", views.BlockedListView.as_view()),
    path("users/<int:user_id>", views.UserDetailView.as_view()),
    path("users/<int:user_id>/block", views.BlockView.as_view()),
]
