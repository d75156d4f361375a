"""A small shop app with every way a route can treat the event loop, for the plugin's tests.

The files of this package are copied into each `pytester` project: they are the project's own
code there, as an app is in a user's repository.
"""
