"""`POST /register`: an `async def` route that calls the blocking manager on the loop."""

from fastapi import APIRouter
from pydantic import BaseModel

from hashroute.manager import UserManager

router = APIRouter()


class Registration(BaseModel):
    email: str
    password: str


@router.post("/register", status_code=201)
async def register(body: Registration) -> dict[str, str]:
    return UserManager().create(body.email, body.password)
