"""``python -m apps.matching.worker --journal-dir DIR [--shard N --of M --cpu C ...]``.

Django-free entry point of the matching worker (``manage.py run_matcher`` execs it). Exit codes:
0 clean stop, 1 error, 2 usage, 3 journal corrupt, 4 shard/directory owned by another worker,
5 output stream ahead of the journal, 75 Redis lost data (restart to re-publish).
"""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
