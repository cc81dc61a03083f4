import datetime as dt
import hashlib

import factory
from django.utils import timezone

from apps.kyc.models import KycApplication, KycDocument, KycDocumentKind, KycStatus
from tests.factories import StaffFactory, UserFactory
from tests.integration.kyc.samples import PDF


class KycApplicationFactory(factory.django.DjangoModelFactory[KycApplication]):
    """A draft with every personal field filled in but no documents (see `complete_application`)."""

    class Meta:
        model = KycApplication

    user = factory.SubFactory(UserFactory)
    legal_name = factory.Faker("name")
    date_of_birth = dt.date(1990, 5, 17)
    address_line1 = factory.Faker("street_address")
    city = factory.Faker("city")
    postal_code = "10115"
    country = "DE"
    tax_id = factory.Sequence(lambda n: f"DE{n:09d}")
    status = KycStatus.DRAFT

    class Params:
        submitted = factory.Trait(
            status=KycStatus.SUBMITTED, submitted_at=factory.LazyFunction(timezone.now)
        )
        approved = factory.Trait(
            status=KycStatus.APPROVED,
            submitted_at=factory.LazyFunction(timezone.now),
            reviewed_by=factory.SubFactory(StaffFactory),
            reviewed_at=factory.LazyFunction(timezone.now),
        )


class KycDocumentFactory(factory.django.DjangoModelFactory[KycDocument]):
    class Meta:
        model = KycDocument

    application = factory.SubFactory(KycApplicationFactory)
    kind = KycDocumentKind.IDENTITY_DOCUMENT
    content_type = "application/pdf"
    file = factory.django.FileField(data=PDF, filename="passport.pdf")
    original_name = "passport.pdf"
    size = len(PDF)
    sha256 = hashlib.sha256(PDF).hexdigest()


def complete_application(**kwargs: object) -> KycApplication:
    """A draft ready to submit: all personal fields and one document of each kind."""
    application = KycApplicationFactory.create(**kwargs)
    KycDocumentFactory.create(application=application, kind=KycDocumentKind.IDENTITY_DOCUMENT)
    KycDocumentFactory.create(
        application=application,
        kind=KycDocumentKind.PROOF_OF_ADDRESS,
        original_name="utility-bill.pdf",
    )
    return application
