from django.apps import AppConfig


class FundingConfig(AppConfig):
    name = "apps.funding"
    label = "funding"
    verbose_name = "Deposits and withdrawals"
