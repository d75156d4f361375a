"""Measured runs: a server, the probe inside it and a load driver, joined into a `Trace`.

`run.measure` makes one measurement; `experiment` is the seed's experiment, one measurement per
demo mode. This is the one package where `server`, `load` and the probe's records meet.
"""
