"""The seed's app: a FastAPI users service over SQLite, in every execution variant.

Nothing here knows it is being observed: `loopscope.server` runs it like any other app
(`loopscope.demo:create_app`, a uvicorn factory) and the probe watches from outside.
"""

from loopscope.demo.app import VARIANTS, create_app
from loopscope.demo.db import demo_password
from loopscope.demo.settings import DemoSettings

__all__ = ["VARIANTS", "DemoSettings", "create_app", "demo_password"]
