"""The KYC state machine, written down once.

    draft ──submit──▶ submitted ──approve──▶ approved            (final)
                        │  ▲  └────reject────▶ rejected            (final)
          request_info  │  │ submit
                        ▼  │
                 more_info_requested

Rejection is final: a new attempt is a back-office matter, not a self-service loop, so a rejected
applicant cannot simply resubmit the same evidence until someone gives in.
"""

from apps.common.errors import InvalidTransition
from apps.kyc.models import KycStatus

TRANSITIONS: dict[KycStatus, frozenset[KycStatus]] = {
    KycStatus.DRAFT: frozenset({KycStatus.SUBMITTED}),
    KycStatus.SUBMITTED: frozenset(
        {KycStatus.APPROVED, KycStatus.REJECTED, KycStatus.MORE_INFO_REQUESTED}
    ),
    KycStatus.MORE_INFO_REQUESTED: frozenset({KycStatus.SUBMITTED}),
    KycStatus.APPROVED: frozenset(),
    KycStatus.REJECTED: frozenset(),
}

# States in which the applicant may change personal data or add documents.
EDITABLE_STATES: frozenset[KycStatus] = frozenset({KycStatus.DRAFT, KycStatus.MORE_INFO_REQUESTED})


def can_transition(source: str, target: str) -> bool:
    return KycStatus(target) in TRANSITIONS[KycStatus(source)]


def ensure_transition(source: str, target: str) -> None:
    if not can_transition(source, target):
        allowed = sorted(TRANSITIONS[KycStatus(source)])
        hint = (
            f" From '{source}' it can only move to: {', '.join(allowed)}."
            if allowed
            else f" '{source}' is a final state."
        )
        raise InvalidTransition(
            f"A KYC application cannot move from '{source}' to '{target}'.{hint}",
            code="invalid_kyc_transition",
        )


def is_editable(status: str) -> bool:
    return KycStatus(status) in EDITABLE_STATES
