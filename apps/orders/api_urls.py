from django.urls import path

from apps.orders import apis

app_name = "orders_api"

urlpatterns = [
    path("orders/", apis.OrderListCreateApi.as_view(), name="orders"),
    path(
        "orders/by-client-id/<str:client_order_id>/",
        apis.OrderByClientIdApi.as_view(),
        name="order-by-client-id",
    ),
    # str, not uuid: a malformed id must get the API's JSON 404, not the HTML one.
    path("orders/<str:order_id>/", apis.OrderDetailApi.as_view(), name="order"),
]
