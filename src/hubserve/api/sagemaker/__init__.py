"""SageMaker API compatibility: the control plane boto3's ``sagemaker`` client speaks (awsJson1_1).

The runtime side (``InvokeEndpoint``, ``InvokeEndpointAsync``) is served by the invocation routes;
``runtime_errors`` gives them SageMaker's modelled error shapes.
"""

from hubserve.api.sagemaker.router import router

__all__ = ["router"]
