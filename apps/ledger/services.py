"""Writes to the cash ledger: accounts, balanced postings and holds.

Every function takes keyword arguments only, opens its own `transaction.atomic()` (a savepoint
when the caller already has a transaction, so it composes with an outer atomic block) and writes
one audit record per money movement in that transaction.

Locking: the platform-wide lock order is

    cash accounts (ascending id) → position → order / withdrawal → hold → audit chain (last)

- The ledger services lock every cash account they touch with `SELECT ... FOR UPDATE ORDER BY
  id`, i.e. in ascending id order, before reading balances, then the hold row (if any), then
  they write the audit record (the audit chain lock is held until commit).
- A caller that touches positions or orders in the same transaction must lock the accounts
  *first*: call `cash_accounts_lock(account_ids=...)` with every account it will touch (the
  later `ledger_post`/`hold_*` calls re-lock the same rows, which is a no-op), then lock its
  own rows, then call the ledger services last (they take the audit chain lock).
- Within one transaction, never lock a cash account after a position, order or hold.
"""

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, NoReturn

from django.db import IntegrityError, transaction

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.common.errors import InvalidInput, InvalidTransition, NotFound
from apps.instruments.models import CURRENCY_REGEX
from apps.ledger.currencies import LEDGER_AMOUNT_LIMIT, LEDGER_DECIMAL_PLACES, has_at_most_places
from apps.ledger.errors import InsufficientFunds
from apps.ledger.models import (
    HOUSE_KINDS,
    NON_NEGATIVE_KINDS,
    ZERO,
    AccountKind,
    CashAccount,
    Hold,
    HoldReason,
    HoldStatus,
    Posting,
    PostingKind,
    PostingLine,
)

__all__ = [
    "InsufficientFunds",
    "LineInput",
    "cash_account_get_or_create",
    "cash_account_set_trading_blocked",
    "cash_accounts_lock",
    "hold_consume",
    "hold_place",
    "hold_release",
    "house_account",
    "ledger_post",
]

LineInput = tuple[CashAccount | int, Decimal]


# --- helpers ---------------------------------------------------------------------------------


def _money(value: Any, *, field: str = "amount", allow_negative: bool = True) -> Decimal:
    """An exact, non-zero amount with at most 8 decimal places. Floats are refused."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise InvalidInput(
            f"{field} must be a Decimal, not {type(value).__name__}.",
            fields={field: ["Must be a Decimal."]},
        )
    amount = Decimal(value)
    if not amount.is_finite():
        raise InvalidInput(f"{field} must be a finite number.", fields={field: ["Not finite."]})
    if amount == 0:
        raise InvalidInput(f"{field} must not be zero.", code="zero_amount")
    if not allow_negative and amount < 0:
        raise InvalidInput(f"{field} must be greater than zero.", fields={field: ["Must be > 0."]})
    if abs(amount) >= LEDGER_AMOUNT_LIMIT:
        raise InvalidInput(f"{field} is too large.", fields={field: ["Too large."]})
    if not has_at_most_places(amount, LEDGER_DECIMAL_PLACES):
        raise InvalidInput(
            f"{field} has more than {LEDGER_DECIMAL_PLACES} decimal places.",
            code="invalid_precision",
            fields={field: [f"At most {LEDGER_DECIMAL_PLACES} decimal places."]},
        )
    return amount


def _account_id(account: CashAccount | int) -> int:
    if isinstance(account, CashAccount):
        if account.pk is None:
            raise InvalidInput("Save the cash account before posting to it.")
        return int(account.pk)
    if isinstance(account, bool) or not isinstance(account, int):
        raise InvalidInput("A ledger line needs a CashAccount or an account id.")
    return account


def _normalize_lines(lines: Sequence[LineInput]) -> list[tuple[int, Decimal]]:
    normalized = [(_account_id(account), _money(amount)) for account, amount in lines]
    if len(normalized) < 2:
        raise InvalidInput("A posting needs at least two lines.", code="posting_too_short")
    return normalized


def _normalize_currency(currency: str) -> str:
    code = (currency or "").strip().upper()
    if not re.fullmatch(CURRENCY_REGEX, code):
        raise InvalidInput(
            "Use an ISO 4217 three-letter currency code, e.g. USD.",
            code="invalid_currency",
            fields={"currency": ["Three upper-case letters."]},
        )
    return code


def _actor_user(actor: Any) -> User | None:
    return actor if isinstance(actor, User) and actor.pk is not None else None


def _refresh(target: Any, source: CashAccount) -> None:
    """Copy fresh balances into the caller's instance so it does not go stale."""
    if isinstance(target, CashAccount) and target is not source and target.pk == source.pk:
        target.balance = source.balance
        target.held = source.held


def _insufficient(account: CashAccount, needed: Decimal, *, code: str | None = None) -> NoReturn:
    available = account.balance - account.held
    raise InsufficientFunds(
        f"Not enough {account.currency} available: {available.normalize():f} available, "
        f"{needed.normalize():f} needed.",
        code=code,
    )


# --- accounts --------------------------------------------------------------------------------


def cash_accounts_lock(*, account_ids: Iterable[int]) -> dict[int, CashAccount]:
    """Lock these cash accounts (FOR UPDATE, ascending id) in the caller's transaction.

    Must run inside `transaction.atomic()`. Raises `NotFound` if one does not exist.
    """
    ids = sorted(set(account_ids))
    rows = CashAccount.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    accounts = {account.pk: account for account in rows}
    missing = [pk for pk in ids if pk not in accounts]
    if missing:
        raise NotFound(f"Cash account #{missing[0]} does not exist.", code="cash_account_not_found")
    return accounts


def cash_account_get_or_create(*, user: User, currency: str) -> CashAccount:
    """The user's customer account in `currency`, created (empty) if needed.

    Safe under concurrency (a lost insert race returns the winner's row). Opening an empty
    account moves no money and takes no lock, so it is not audited.
    """
    currency = _normalize_currency(currency)
    if user.pk is None:
        raise InvalidInput("Save the user first.")
    lookup = {"owner": user, "kind": AccountKind.CUSTOMER, "currency": currency}
    existing = CashAccount.objects.filter(**lookup).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return CashAccount.objects.create(**lookup)
    except IntegrityError:
        return CashAccount.objects.get(**lookup)


def house_account(*, kind: str, currency: str) -> CashAccount:
    """The house account of `kind` (house_fee, house_market_maker, house_bank) in `currency`,
    created if needed."""
    if kind not in HOUSE_KINDS:
        raise InvalidInput(f"{kind!r} is not a house account kind.", code="invalid_account_kind")
    currency = _normalize_currency(currency)
    lookup = {"owner": None, "kind": kind, "currency": currency}
    existing = CashAccount.objects.filter(**lookup).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return CashAccount.objects.create(**lookup)
    except IntegrityError:
        return CashAccount.objects.get(**lookup)


def cash_account_set_trading_blocked(
    *, account_id: int, blocked: bool, reason: str = "", actor: Any = None, ip: str | None = None
) -> CashAccount:
    """Block (with a reason) or unblock trading on an account. Idempotent."""
    reason = reason.strip()[:255]
    if blocked and not reason:
        raise InvalidInput("Give a reason for blocking.", fields={"reason": ["Required."]})
    with transaction.atomic():
        account = cash_accounts_lock(account_ids=[account_id])[account_id]
        if account.trading_blocked == blocked:
            return account
        before = {"trading_blocked": account.trading_blocked}
        account.trading_blocked = blocked
        account.trading_blocked_reason = reason if blocked else ""
        account.save(update_fields=["trading_blocked", "trading_blocked_reason"])
        audit_record(
            action="ledger.trading_blocked" if blocked else "ledger.trading_unblocked",
            actor=actor,
            obj=account,
            before=before,
            after={"trading_blocked": blocked, "reason": account.trading_blocked_reason},
            ip=ip,
        )
    return account


# --- postings --------------------------------------------------------------------------------


def _post_locked(
    *,
    accounts: dict[int, CashAccount],
    lines: list[tuple[int, Decimal]],
    kind: str,
    reference_type: str,
    reference_id: str,
    memo: str,
    actor: Any,
    held_reduction: dict[int, Decimal] | None = None,
    audit_extra: dict[str, Any] | None = None,
) -> Posting:
    """Write one posting. The caller has locked every account in `accounts` (and the hold)."""
    if kind not in PostingKind.values:
        raise InvalidInput(f"Unknown posting kind {kind!r}.", code="invalid_posting_kind")
    held_reduction = held_reduction or {}

    totals: dict[str, Decimal] = {}
    for account_id, amount in lines:
        currency = accounts[account_id].currency
        totals[currency] = totals.get(currency, ZERO) + amount
    unbalanced = sorted(currency for currency, total in totals.items() if total != 0)
    if unbalanced:
        raise InvalidInput(
            f"The posting does not balance in {', '.join(unbalanced)}: debits must equal credits.",
            code="posting_unbalanced",
        )

    new_balance = {account_id: accounts[account_id].balance for account_id, _ in lines}
    balance_after: list[Decimal] = []
    for account_id, amount in lines:
        new_balance[account_id] += amount
        balance_after.append(new_balance[account_id])

    for account_id, balance in new_balance.items():
        account = accounts[account_id]
        held = account.held - held_reduction.get(account_id, ZERO)
        if account.kind in NON_NEGATIVE_KINDS and balance < max(held, ZERO):
            _insufficient(account, account.balance - balance)

    posting = Posting.objects.create(
        kind=kind,
        reference_type=reference_type[:64],
        reference_id=str(reference_id)[:64],
        memo=memo[:255],
        created_by=_actor_user(actor),
    )
    PostingLine.objects.bulk_create(
        [
            PostingLine(
                posting=posting,
                account_id=account_id,
                amount=amount,
                currency=accounts[account_id].currency,
                balance_after=after,
            )
            for (account_id, amount), after in zip(lines, balance_after, strict=True)
        ]
    )
    for account_id, balance in new_balance.items():
        account = accounts[account_id]
        account.balance = balance
        fields = ["balance"]
        if account_id in held_reduction:
            account.held -= held_reduction[account_id]
            fields.append("held")
        account.save(update_fields=fields)

    audit_record(
        action="ledger.posted",
        actor=actor,
        obj=posting,
        after={
            "kind": kind,
            "reference_type": posting.reference_type,
            "reference_id": posting.reference_id,
            "memo": posting.memo,
            "lines": [
                {"account": account_id, "currency": accounts[account_id].currency, "amount": amount}
                for account_id, amount in lines
            ],
            **(audit_extra or {}),
        },
    )
    return posting


def ledger_post(
    *,
    lines: Sequence[LineInput],
    kind: str,
    reference_type: str = "",
    reference_id: str | int = "",
    memo: str = "",
    actor: Any = None,
) -> Posting:
    """Post a balanced journal entry and update the account balances.

    `lines` are (account or account id, signed Decimal amount): positive credits (raises) the
    account's balance, negative debits it. Every amount is non-zero with at most 8 decimal
    places; the amounts sum to zero per currency. A customer or fee account may not end below
    zero or below its held amount (`InsufficientFunds`); spending held cash goes through
    `hold_consume`. Locks: the accounts, ascending id; then the audit chain.
    """
    normalized = _normalize_lines(lines)
    with transaction.atomic():
        accounts = cash_accounts_lock(account_ids=[account_id for account_id, _ in normalized])
        posting = _post_locked(
            accounts=accounts,
            lines=normalized,
            kind=kind,
            reference_type=reference_type,
            reference_id=str(reference_id),
            memo=memo,
            actor=actor,
        )
    for account, _ in lines:
        if isinstance(account, CashAccount):
            _refresh(account, accounts[account.pk])
    return posting


# --- holds -----------------------------------------------------------------------------------


def hold_place(
    *,
    account: CashAccount | int,
    amount: Decimal,
    reason: str,
    reference_type: str = "",
    reference_id: str | int = "",
    actor: Any = None,
) -> Hold:
    """Reserve `amount` of the account's available cash (balance - held).

    Raises `InsufficientFunds` with code `insufficient_buying_power` (reason `order`) or
    `insufficient_funds` (reason `withdrawal`). House market-maker and bank accounts may be
    overdrawn, so their holds are not checked against the balance. Locks: the account; audit.
    """
    amount = _money(amount, allow_negative=False)
    if reason not in HoldReason.values:
        raise InvalidInput(f"Unknown hold reason {reason!r}.", code="invalid_hold_reason")
    account_id = _account_id(account)
    with transaction.atomic():
        locked = cash_accounts_lock(account_ids=[account_id])[account_id]
        if locked.kind in NON_NEGATIVE_KINDS and locked.balance - locked.held < amount:
            code = (
                "insufficient_buying_power" if reason == HoldReason.ORDER else "insufficient_funds"
            )
            _insufficient(locked, amount, code=code)
        locked.held += amount
        locked.save(update_fields=["held"])
        hold = Hold.objects.create(
            account=locked,
            amount=amount,
            original_amount=amount,
            reason=reason,
            reference_type=reference_type[:64],
            reference_id=str(reference_id)[:64],
        )
        audit_record(
            action="ledger.hold_placed",
            actor=actor,
            obj=hold,
            after={
                "account": account_id,
                "amount": amount,
                "reason": reason,
                "reference_type": hold.reference_type,
                "reference_id": hold.reference_id,
            },
        )
    _refresh(account, locked)
    return hold


def _hold_account_id(hold: Hold | int) -> tuple[int, int]:
    hold_id = int(hold.pk) if isinstance(hold, Hold) else int(hold)
    account_id = Hold.objects.filter(pk=hold_id).values_list("account_id", flat=True).first()
    if account_id is None:
        raise NotFound(f"Hold #{hold_id} does not exist.", code="hold_not_found")
    return hold_id, account_id


def _hold_sync(target: Hold | int, source: Hold) -> None:
    if isinstance(target, Hold) and target is not source:
        for field in ("amount", "consumed_amount", "released_amount", "status", "updated_at"):
            setattr(target, field, getattr(source, field))


def hold_release(
    *, hold: Hold | int, amount: Decimal | None = None, actor: Any = None, memo: str = ""
) -> Hold:
    """Give back `amount` (default: all that remains) of an active hold to the available cash.

    Releasing everything from a hold that is no longer active is a no-op (so retries are safe);
    releasing an explicit amount from an inactive hold, or more than remains, is refused.
    Locks: the account, then the hold; audit.
    """
    release = None if amount is None else _money(amount, allow_negative=False)
    hold_id, account_id = _hold_account_id(hold)
    with transaction.atomic():
        account = cash_accounts_lock(account_ids=[account_id])[account_id]
        locked = Hold.objects.select_for_update().get(pk=hold_id)
        if locked.status != HoldStatus.ACTIVE:
            if release is None:
                _hold_sync(hold, locked)
                return locked
            raise InvalidTransition(f"Hold #{hold_id} is {locked.status}.", code="hold_not_active")
        release = locked.amount if release is None else release
        if release > locked.amount:
            raise InvalidInput(
                f"Hold #{hold_id} has only {locked.amount.normalize():f} left to release.",
                code="hold_amount_exceeded",
            )
        locked.amount -= release
        locked.released_amount += release
        if locked.amount == 0:
            locked.status = HoldStatus.RELEASED
        locked.save(update_fields=["amount", "released_amount", "status", "updated_at"])
        account.held -= release
        account.save(update_fields=["held"])
        audit_record(
            action="ledger.hold_released",
            actor=actor,
            obj=locked,
            after={
                "account": account_id,
                "released": release,
                "remaining": locked.amount,
                "status": locked.status,
                "memo": memo[:255],
            },
        )
    _hold_sync(hold, locked)
    return locked


def hold_consume(
    *,
    hold: Hold | int,
    amount: Decimal,
    lines: Sequence[LineInput],
    kind: str,
    reference_type: str = "",
    reference_id: str | int = "",
    memo: str = "",
    actor: Any = None,
    release_remainder: bool = False,
) -> Posting:
    """Spend `amount` of an active hold: reduce it and post `lines` in one step.

    The lines must debit the hold's account by at least `amount` (net); any debit beyond the
    hold must be covered by the account's available cash. With `release_remainder=True` what is
    left of the hold afterwards is released too. Example: hold 100 → fill spends 60
    (`hold_consume(amount=60, ...)`, hold 40 left) → order cancelled (`hold_release`), exact.
    A hold ends `consumed` when a consumption empties it, `released` when a release does.
    Locks: every account of the lines plus the hold's account (ascending id), then the hold;
    audit (one `ledger.posted` record that names the hold).
    """
    consume = _money(amount, allow_negative=False)
    normalized = _normalize_lines(lines)
    hold_id, hold_account = _hold_account_id(hold)
    with transaction.atomic():
        accounts = cash_accounts_lock(
            account_ids=[hold_account, *(account_id for account_id, _ in normalized)]
        )
        locked = Hold.objects.select_for_update().get(pk=hold_id)
        if locked.status != HoldStatus.ACTIVE:
            raise InvalidTransition(f"Hold #{hold_id} is {locked.status}.", code="hold_not_active")
        if consume > locked.amount:
            raise InvalidInput(
                f"Hold #{hold_id} has only {locked.amount.normalize():f} left to consume.",
                code="hold_amount_exceeded",
            )
        debit = -sum((a for account_id, a in normalized if account_id == hold_account), ZERO)
        if debit < consume:
            raise InvalidInput(
                "The lines must debit the held account by at least the consumed amount.",
                code="hold_consume_mismatch",
            )
        remainder = locked.amount - consume if release_remainder else ZERO
        posting = _post_locked(
            accounts=accounts,
            lines=normalized,
            kind=kind,
            reference_type=reference_type,
            reference_id=str(reference_id),
            memo=memo,
            actor=actor,
            held_reduction={hold_account: consume + remainder},
            audit_extra={"hold": {"id": hold_id, "consumed": consume, "released": remainder}},
        )
        locked.amount -= consume + remainder
        locked.consumed_amount += consume
        locked.released_amount += remainder
        if locked.amount == 0:
            locked.status = HoldStatus.RELEASED if remainder > 0 else HoldStatus.CONSUMED
        locked.save(
            update_fields=["amount", "consumed_amount", "released_amount", "status", "updated_at"]
        )
    _hold_sync(hold, locked)
    for account, _ in lines:
        if isinstance(account, CashAccount):
            _refresh(account, accounts[account.pk])
    return posting
