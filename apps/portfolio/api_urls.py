from django.urls import path

from apps.portfolio import apis

app_name = "portfolio_api"

urlpatterns = [
    path("positions/", apis.PositionListApi.as_view(), name="positions"),
    # Symbols may contain "/" (e.g. BTC/USD), hence the path converter.
    path("positions/<path:symbol>/", apis.PositionDetailApi.as_view(), name="position"),
    path("activities/fills/", apis.FillListApi.as_view(), name="fills"),
]
