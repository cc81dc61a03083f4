from django.urls import path

from apps.kyc import apis

app_name = "kyc_api"

urlpatterns = [
    path("application/", apis.KycApplicationApi.as_view(), name="application"),
    path("application/documents/", apis.KycDocumentsApi.as_view(), name="documents"),
    path("application/submit/", apis.KycSubmitApi.as_view(), name="submit"),
]
