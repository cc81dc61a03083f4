from django.apps import AppConfig


class PortfolioConfig(AppConfig):
    name = "apps.portfolio"
    label = "portfolio"
    verbose_name = "Positions and fills"
