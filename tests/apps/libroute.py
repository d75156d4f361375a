"""An app whose only route comes from an installed library (`tests/packages/hashroute`), under a
prefix, as fastapi-users' routers are included."""

from fastapi import FastAPI
from hashroute import router

app = FastAPI()
app.include_router(router, prefix="/auth")
