"""A user's app, as loopscope finds it: routes in one module, a blocking call two modules down."""
