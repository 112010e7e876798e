"""`python -m hubserve ...` is the same as the `hubserve` command."""

from hubserve.cli.main import app

app()
