from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    """Opaque `?cursor=` pages, newest first, stable while new rows arrive.

    The cursor holds the first ordering field (a timestamp; ties are resolved by DRF's offset
    and the tie-breaker keeps the order deterministic)."""

    ordering: tuple[str, ...] = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class FillsCursorPagination(NewestFirstCursorPagination):
    ordering = ("-executed_at", "-id")
