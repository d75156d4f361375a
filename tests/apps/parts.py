"""An `async def` endpoint with a plain `def` dependency, as a JWT strategy often is: the
endpoint runs on the loop, the dependency in the thread pool."""

import time
from typing import Annotated

from fastapi import Depends, FastAPI

app = FastAPI()


def get_strategy() -> dict[str, str]:
    time.sleep(0.03)  # a blocking lookup, harmless here: FastAPI runs it in the thread pool
    return {"alg": "HS256"}


@app.get("/authenticated-route")
async def authenticated(
    strategy: Annotated[dict[str, str], Depends(get_strategy)],
) -> dict[str, str]:
    return {"alg": strategy["alg"]}
