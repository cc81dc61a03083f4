from django.urls import path

from apps.instruments import apis

app_name = "instruments_api"

# Symbols may contain "/" (e.g. BTC/USD), hence the path converter.
urlpatterns = [
    path("instruments/", apis.InstrumentListApi.as_view(), name="instruments"),
    path("instruments/<path:symbol>/", apis.InstrumentDetailApi.as_view(), name="instrument"),
    path("quotes/<path:symbol>/", apis.QuoteApi.as_view(), name="quote"),
]
