from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from apps.accounts import views
from apps.accounts.decorators import mfa_exempt

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.login_view, name="login"),
    path("accounts/logout/", views.logout_view, name="logout"),
    path("accounts/verify-email/<str:token>/", views.verify_email, name="verify-email"),
    path("accounts/verify-email-resend/", views.resend_verification, name="verify-email-resend"),
    path(
        "accounts/password-reset/",
        mfa_exempt(
            auth_views.PasswordResetView.as_view(
                template_name="registration/password_reset_form.html",
                email_template_name="registration/password_reset_email.txt",
                subject_template_name="registration/password_reset_subject.txt",
                success_url=reverse_lazy("accounts:password-reset-done"),
            )
        ),
        name="password-reset",
    ),
    path(
        "accounts/password-reset/sent/",
        mfa_exempt(
            auth_views.PasswordResetDoneView.as_view(
                template_name="registration/password_reset_done.html"
            )
        ),
        name="password-reset-done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        mfa_exempt(views.PasswordResetConfirmView.as_view()),
        name="password-reset-confirm",
    ),
    path(
        "accounts/reset/done/",
        mfa_exempt(
            auth_views.PasswordResetCompleteView.as_view(
                template_name="registration/password_reset_complete.html"
            )
        ),
        name="password-reset-complete",
    ),
    path("mfa/setup/", views.mfa_setup, name="mfa-setup"),
    path("mfa/verify/", views.mfa_verify, name="mfa-verify"),
    path("security/", views.security, name="security"),
    path(
        "security/sessions/revoke-others/",
        views.sessions_revoke_others,
        name="sessions-revoke-others",
    ),
    path("security/sessions/<int:session_id>/revoke/", views.session_revoke, name="session-revoke"),
    path("security/backup-codes/", views.backup_codes_regenerate, name="backup-codes-regenerate"),
    path("security/tokens/", views.token_create, name="token-create"),
    path("security/tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
]
