"""HTTP routes: the management API, the invocation routes (HF and SageMaker shapes), errors.

The top of the dependency graph: may import gateway, control, store, spec, models (for
validating sources at create time) and errors.
"""

from hubserve.api.app import create_app

__all__ = ["create_app"]
