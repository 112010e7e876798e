"""The Terraform provider: ``terraform-provider-hubserve``, speaking Terraform's plugin protocol through ``tf``.

An HTTP client of the server like the SDK (it uses it). ``fields`` maps the endpoint spec to
attributes and blocks without importing ``tf``, so ``hubserve export --format terraform`` works
without the ``terraform`` extra; the other modules need it.
"""
