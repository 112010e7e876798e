"""Generative endpoints' dialects: TGI's and OpenAI's routes, and the neutral request they all send.

``neutral`` (the request and answers every dialect shares), ``tgi`` and ``openai`` (each dialect's
requests, answers and errors), ``toolkit`` (the toolkit's and SageMaker's routes on a generative
endpoint, called by ``api/invocation.py``), ``routes`` (``/generate``, ``/generate_stream``,
``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, ``/v1/embeddings``). This ``__init__``
imports nothing, so ``api/invocation.py`` and ``routes`` may import each other's modules.
"""
