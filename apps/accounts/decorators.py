from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


def mfa_exempt(view: F) -> F:
    """Mark a view reachable by a signed-in user who has not yet passed the second factor."""
    view.mfa_exempt = True  # type: ignore[attr-defined]
    return view
