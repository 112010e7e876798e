"""The `hubserve` command line: typer + rich over ``hubserve.sdk.Client``.

``main`` assembles the app; ``endpoint`` and ``invoke`` hold the client-side
commands, ``specs`` turns files and flags into specs, ``output`` prints, and
``common`` holds the shared options and the one-line error handling. ``serve``
(the platform itself) is the only module here that imports the server side.
"""
