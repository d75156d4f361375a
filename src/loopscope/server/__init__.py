"""Run the server under study: uvicorn in its own process on a free loopback port.

`ServerProcess` starts uvicorn on `loopscope.server.target:app`, which installs the probe (when
asked), imports the user's app and applies the server's settings; it waits until the server
answers, stops it without leaving orphans, keeps its log, and hands back the probe's records.
"""

from loopscope.server.ports import LOOPBACK, free_port
from loopscope.server.process import ServerProcess, ServerSettings

__all__ = ["LOOPBACK", "ServerProcess", "ServerSettings", "free_port"]
