"""Who may do what: tenants' users (console log-in), API keys, roles and permissions.

- :mod:`.roles`: the permission table of the six roles;
- :mod:`.principal`: :class:`Principal`, who is asking (a user or a key) and what they may do;
- :mod:`.users`, :mod:`.passwords`: console users and their argon2 password hashes;
- :mod:`.keys`: API keys, stored as a public prefix and a SHA-256;
- :mod:`.sessions`: console sessions with their CSRF token;
- :mod:`.logins`: the console log-in (password, throttle, session, audit entry);
- :mod:`.tenants`: the rules a new tenant's id, signature and zone follow;

The API (:mod:`jingxin.api.auth`, :mod:`jingxin.api.accounts`) and the CLI (``jingxin
users``, ``jingxin keys``, ``jingxin tenants``) use these same functions.
"""

from jingxin.access.principal import Principal
from jingxin.access.roles import ALL_PERMISSIONS, PERMISSIONS, ROLES, permissions_of

__all__ = ["ALL_PERMISSIONS", "PERMISSIONS", "ROLES", "Principal", "permissions_of"]
