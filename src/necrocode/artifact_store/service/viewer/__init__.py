"""The artifact viewer: server-rendered pages over the service, for reviewers.

Jinja templates and a little vanilla CSS/JS, all shipped in this package and
served by the service itself (no CDN, no build step). One module per kind of
page — :mod:`.home`, :mod:`.spec`, :mod:`.task`, :mod:`.artifact` (with
:mod:`.diff_page`, :mod:`.log_page`, :mod:`.test_page`) and :mod:`.compare` —
each building a context dict of plain JSON values that renders the HTML page
and is the page's JSON twin (``?format=json``). :mod:`.loglines` and
:mod:`.logspool` keep big logs light: the page loads line ranges on demand.
The content itself is read by the parsers of :mod:`necrocode.artifact_store.content`.

:func:`install_viewer` adds it all to an app made by
:func:`~necrocode.artifact_store.service.app.create_app`.
"""

from __future__ import annotations

from .routes import install_viewer, viewer_router
from .state import Viewer

__all__ = ["Viewer", "install_viewer", "viewer_router"]
