"""The web console under ``/console``: server-rendered page shells whose small scripts call
the JSON API with the session cookie and its CSRF token - the same routes, and so the same
rules, as every other client. Chinese by default, English by a toggle (:mod:`.i18n`).

- :mod:`.shell`: templates, navigation by permission, security headers (CSP: self only);
- :mod:`.login`: the log-in form and log-out;
- :mod:`.pages`: one route per page (dashboard, campaigns and the wizard, templates,
  fences, hall, dial tests, work orders);
- :mod:`.assets`: the static files and plotly.js, from the installed packages (offline).
"""

from fastapi import APIRouter

from jingxin.console import assets, login, pages

router = APIRouter()
router.include_router(assets.router)
router.include_router(login.router)
router.include_router(pages.router)

__all__ = ["router"]
