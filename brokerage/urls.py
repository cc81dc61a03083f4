from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from brokerage.admin_site import harden_admin_site

harden_admin_site(admin.site)

api_v1 = [
    path("", include("apps.accounts.api_urls")),
    path("kyc/", include("apps.kyc.api_urls")),
    path("", include("apps.ledger.api_urls")),
    path("funding/", include("apps.funding.api_urls")),
    path("", include("apps.instruments.api_urls")),
    path("", include("apps.orders.api_urls")),
    path("", include("apps.portfolio.api_urls")),
]

urlpatterns = [
    path("", include("apps.accounts.urls")),
    path("kyc/", include("apps.kyc.urls")),
    path("", include("apps.ops.urls")),
    path("", include("apps.matching.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
