"""The user manager: registering a user hashes the password, on whatever thread calls it."""

from hashroute.password import hash_password


class UserManager:
    def create(self, email: str, password: str) -> dict[str, str]:
        hashed = hash_password(password)  # the library's own last line before argon2
        return {"email": email, "hash_prefix": hashed[:10]}
