"""Project-wide HTTP plumbing: errors, parsers, throttles, roles, schema, JWT, clients.

Every app's views import this package; it imports no app (``orders``,
``healing``, ``notifications``), so the plumbing can serve all of them.
"""
