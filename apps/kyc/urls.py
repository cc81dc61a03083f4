from django.urls import path

from apps.kyc import views

app_name = "kyc"

urlpatterns = [
    path("", views.application_view, name="application"),
    path("documents/", views.document_upload_view, name="document_upload"),
    path("submit/", views.submit_view, name="submit"),
    path(
        "documents/<int:document_id>/download/",
        views.document_download_view,
        name="document_download",
    ),
]
