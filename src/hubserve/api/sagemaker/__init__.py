"""SageMaker API compatibility: the control plane boto3's ``sagemaker`` client speaks (awsJson1_1).

``InvokeEndpoint`` and ``InvokeEndpointAsync`` (boto3's ``sagemaker-runtime`` client) are served by the
invocation routes; ``invocations.py`` gives them SageMaker's headers and modelled error shapes.
"""

from hubserve.api.sagemaker.router import router

__all__ = ["router"]
