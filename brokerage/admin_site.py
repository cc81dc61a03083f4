from django.contrib.admin import AdminSite
from django_otp.admin import OTPAdminSite


def harden_admin_site(site: AdminSite) -> None:
    """Make the default admin site require a verified OTP device, not just a staff password."""
    site.__class__ = OTPAdminSite
    site.site_header = "Brokerage back office"
    site.site_title = "Brokerage back office"
    site.index_title = "Operations"
