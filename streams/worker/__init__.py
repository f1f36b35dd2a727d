"""The Faust runtime of the checker, and the only package that imports Faust: the app and
its agent (``app``), the ``consentinel worker`` command (``command``) and ``faust_compat``,
which holds every use of Faust's private API, pinned and documented."""
