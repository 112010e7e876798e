"""Models: where a model comes from, what task it serves, and how a replica runs it.

Owns model sources (``sources``), task inference from a model folder (``task_inference``),
loading weights and building a predictor per task (``loading``, ``predictors``, ``qa``,
``seq2seq``) and users' custom code (``custom``: ``handler.py`` and SageMaker
``code/inference.py``). Imports only the leaves ``hubserve.tasks``, ``hubserve.errors`` and
``hubserve.spec``; nothing from the server side (api, gateway, control, backends), because
replicas import it after forking and must stay small.

This ``__init__`` stays import-light (no torch): the server imports ``infer_task`` and
``find_custom_code`` without paying for transformers.
"""

from hubserve.models.custom import find_custom_code
from hubserve.models.task_inference import infer_task

__all__ = ["find_custom_code", "infer_task"]
