from time import sleep as nap


class Repo:
    def load(self, key):
        return self._read(key)

    def _read(self, key):
        nap(0.5)
        return key


def slow_lookup(key):
    nap(0.5)
    return key
