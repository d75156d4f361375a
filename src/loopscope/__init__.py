"""loopscope: show, measure, predict and lint how a Python web server schedules requests.

The pieces, in the order data flows through them: `loopscope.demo` (the seed's FastAPI app),
`loopscope.server` (runs an app under uvicorn in its own process), `loopscope.load` (sends the
scenario and stamps every request), `loopscope.probe` (records the event loop and the thread pool
inside the server), `loopscope.trace` (the data model and its analysis) and `loopscope.report`
(console, HTML and Chrome renderings). `loopscope.cli` wires them together.
"""

__version__ = "0.1.0"
