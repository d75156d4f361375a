"""A router a library provides, as fastapi-users does: the app includes it under a prefix."""

from hashroute.router import router

__all__ = ["router"]
