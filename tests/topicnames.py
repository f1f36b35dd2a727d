"""Topic prefixes for tests, tagged with this run so the run can delete what it created.

Every prefix is ``<stem><run><6 hex>.``: the run tag (4 hex) is shared by the whole pytest
session and by the processes it starts, so the session's end deletes exactly its own topics
(see ``pytest_sessionfinish`` in ``tests/conftest.py``) and never those of a suite running
beside it on the same broker. A development broker that ran the suite a hundred times would
otherwise hold tens of thousands of partitions and take minutes to start.
"""

from __future__ import annotations

import os
import re
import uuid

RUN = os.environ.setdefault("CONSENTINEL_TEST_RUN", uuid.uuid4().hex[:4])
_OF_THIS_RUN = re.compile(rf"^[a-z]+{RUN}[0-9a-f]{{6}}\.")


def fresh_prefix(stem: str = "t") -> str:
    """A new topic prefix of this run, e.g. ``t3fa1c0ffee.``."""
    assert stem.isalpha() and stem.islower(), stem
    return f"{stem}{RUN}{uuid.uuid4().hex[:6]}."


def of_this_run(topic: str) -> bool:
    """Did this run create ``topic`` (its records topics, changelogs and tick topic alike)?"""
    return _OF_THIS_RUN.match(topic) is not None
