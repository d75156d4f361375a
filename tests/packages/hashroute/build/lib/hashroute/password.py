"""Password hashing with argon2, whose lanes run in argon2's own threads."""

from argon2 import PasswordHasher

_hasher = PasswordHasher(time_cost=2, memory_cost=32768, parallelism=4)


def hash_password(password: str) -> str:
    return _hasher.hash(password)
