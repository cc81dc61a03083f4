from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    """Opaque `?cursor=` pages, newest first; stable while new rows arrive (ids only grow)."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
