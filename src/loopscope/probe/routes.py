"""A request's route: the full template it matched, with every prefix on the way down.

A route's identity is its method plus its full template: `GET /a/items` and `GET /b/items` are
different rows even when both come from one `@router.get("/items")`. The router leaves the
matched route in `scope["route"]`, but its `path` lacks the prefixes above it:

- FastAPI ≥ 0.16x keeps an included router as one entry of `app.routes` and leaves the route's
  effective context, whose `path_format` has the include prefixes, in `scope["fastapi"]`; older
  FastAPI copies every included route with its prefix, so `scope["route"].path` has it;
- a Starlette `Mount` (a sub-app, static files) adds the path it matched to `root_path` and
  keeps the original in `app_root_path`; the difference is the mount's prefix.
"""

from __future__ import annotations

from typing import Any


def route_template(scope: Any) -> str | None:
    """The full route template of a finished request's `scope`, `None` where no route matched
    (a 404) or the route has no string template."""
    route = scope.get("route")
    if route is None:
        return None
    template: Any = None
    fastapi = scope.get("fastapi")
    if isinstance(fastapi, dict):
        context = fastapi.get("effective_route_context")
        if context is not None:
            template = getattr(context, "path_format", None)
    if not isinstance(template, str):
        template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    return _mount_prefix(scope) + template


def _mount_prefix(scope: Any) -> str:
    """What mounts added to the root path (`/sub` for a sub-app mounted at `/sub`)."""
    if "app_root_path" not in scope:
        return ""
    root, app_root = scope.get("root_path", ""), scope.get("app_root_path", "")
    if not isinstance(root, str) or not isinstance(app_root, str):
        return ""
    return root[len(app_root) :].rstrip("/") if root.startswith(app_root) else ""
