from shop import storage
from shop.storage import Repo


class Orders:
    def __init__(self):
        self.repo = Repo()

    def find(self, key):
        return self.repo.load(key)


def lookup(key):
    return storage.slow_lookup(key)


async def async_lookup(key):
    return await storage_async(key)


async def storage_async(key):
    return key
