from django.contrib.auth import views as auth_views
from django.urls import path

from gateway.ratelimit import login_limited

from . import settings_views, views

app_name = "portal"
urlpatterns = [
    path("login/", login_limited(views.LoginView.as_view()), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="portal:login"), name="logout"),
    path("two-factor/", views.two_factor_setup, name="two-factor"),
    path("signup/", views.signup, name="signup"),
    path("signup/verify/<str:token>/", views.signup_verify, name="signup-verify"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("password-reset/", views.mail_limited(views.PasswordResetView.as_view()), name="password-reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(
        template_name="portal/password_reset_done.html"), name="password-reset-done"),
    path("password-reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(),
         name="password-reset-confirm"),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(
        template_name="portal/password_reset_complete.html"), name="password-reset-complete"),
    path("mode/", views.livemode_switch, name="mode"),
    path("switch/", views.merchant_switch, name="switch"),
    path("developers/", views.dashboard, name="dashboard"),
    path("keys/", views.api_key_create, name="key-create"),
    path("keys/<str:key_id>/revoke", views.api_key_revoke, name="key-revoke"),
    path("keys/<str:key_id>/roll", views.api_key_roll, name="key-roll"),
    path("settings/", settings_views.settings_business, name="settings"),
    path("settings/business/save", settings_views.settings_business_save, name="settings-business-save"),
    path("settings/branding/", settings_views.settings_branding, name="settings-branding"),
    path("settings/branding/save", settings_views.settings_branding_save, name="settings-branding-save"),
    path("settings/checkout/", settings_views.settings_checkout, name="settings-checkout"),
    path("settings/checkout/save", settings_views.settings_checkout_save, name="settings-checkout-save"),
    path("settings/notifications/", settings_views.settings_notifications, name="settings-notifications"),
    path("settings/notifications/save", settings_views.settings_notifications_save,
         name="settings-notifications-save"),
    path("team/", views.team, name="team"),
    path("team/invitations/", views.invitation_create, name="invitation-create"),
    path("team/invitations/<str:invitation_id>/revoke", views.invitation_revoke, name="invitation-revoke"),
    path("team/members/<int:member_id>/role", views.member_role_change, name="member-role"),
    path("team/members/<int:member_id>/remove", views.member_remove, name="member-remove"),
]
