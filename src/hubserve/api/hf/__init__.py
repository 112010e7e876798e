"""The Hugging Face Inference Endpoints API (``/v2/endpoint/...``) over hubserve's own endpoints.

``shapes`` maps the HF request and response shapes onto ``EndpointSpec`` and back (pure
functions, nothing stored twice); ``routes`` serves them, with HF's ``{"error": "..."}`` bodies.
"""

from hubserve.api.hf.routes import router

__all__ = ["router"]
