from django.urls import path

from apps.matching import views

urlpatterns = [path("healthz/matcher", views.matcher_healthz, name="matcher-healthz")]
