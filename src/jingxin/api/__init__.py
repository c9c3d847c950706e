"""The web application ``jingxin serve`` runs: short links now, the API and console later.

:func:`create_app` builds it from the settings (:mod:`jingxin.api.app`); each concern is a
router module beside it (:mod:`.health`, :mod:`.links`).
"""

from jingxin.api.app import check_serving, create_app

__all__ = ["check_serving", "create_app"]
