"""Measured runs: a server, the probe inside it and a load driver, joined into a `Trace`.

`run.measure` makes one measurement; `experiment` is the seed's experiment, one measurement per
demo mode; `failures` says which requests failed and why, from the server's log. This is the one
package where `server`, `load` and the probe's records meet.
"""
