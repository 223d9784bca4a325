from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "portal"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="portal:login"), name="logout"),
    path("keys/", views.api_key_create, name="key-create"),
    path("keys/<str:key_id>/revoke", views.api_key_revoke, name="key-revoke"),
    path("keys/<str:key_id>/roll", views.api_key_roll, name="key-roll"),
    path("two-factor/", views.two_factor_setup, name="two-factor"),
]
