"""SageMaker ``ml.*`` instance types -> hubserve's dedicated sizes (the SDK's ``deploy`` and boto3's
``create_endpoint_config`` both use this one table).

hubserve has no instance families, only sizes (``spec.INSTANCE_SIZES``), so a type maps by what
its name says about vCPUs and whether it carries a GPU:

| SageMaker type (family.size)                         | hubserve size | why                          |
|------------------------------------------------------|---------------|------------------------------|
| CPU families (t2, t3, m4, m5, m6i, c5, r5, ...) .small  | cpu-small  | 1 vCPU                       |
| CPU .medium, .large                                  | cpu-medium    | 2 vCPUs (ml.t2.medium, ml.m5.large) |
| CPU .xlarge                                          | cpu-large     | 4 vCPUs                      |
| CPU .2xlarge and larger                              | cpu-xlarge    | 8 vCPUs (hubserve's largest) |
| GPU families (g4dn, g5, g6, g6e, p3, p4d, p5) .xlarge | gpu-small  | 4 vCPUs, one GPU             |
| GPU .2xlarge                                         | gpu-medium    | 8 vCPUs                      |
| GPU .4xlarge and larger                              | gpu-large     | 16+ vCPUs                    |

A hubserve size (``cpu-small``
...) is accepted as it is. Inferentia and Trainium (inf1, inf2, trn1) have no equivalent and are
refused, as is anything that is not ``ml.<family>.<size>``.
"""

from __future__ import annotations

import re

_TYPE = re.compile(r"^ml\.(?P<family>[a-z]+\d*[a-z]*)\.(?P<size>\d*x?[a-z]+)$")
_GPU_FAMILY = re.compile(r"^(g|p)\d")
_UNSUPPORTED_FAMILY = re.compile(r"^(inf|trn|eia)\d")

_CPU_BY_SIZE = {"small": "cpu-small", "medium": "cpu-medium", "large": "cpu-medium", "xlarge": "cpu-large"}
_GPU_BY_SIZE = {"xlarge": "gpu-small", "2xlarge": "gpu-medium"}


def hubserve_instance(instance_type: str) -> str:
    """The hubserve dedicated size for a SageMaker instance type; ValueError names what is accepted."""
    from hubserve.spec import (
        INSTANCE_SIZES,  # here, so importing the SDK stays free of pydantic
    )

    if instance_type in INSTANCE_SIZES:
        return instance_type
    match = _TYPE.match(instance_type.strip().lower())
    if match is None:
        raise ValueError(
            f"instance_type '{instance_type}' is neither a SageMaker type such as ml.m5.xlarge "
            f"nor a hubserve size ({', '.join(INSTANCE_SIZES)})"
        )
    family, size = match["family"], match["size"]
    if _UNSUPPORTED_FAMILY.match(family):
        raise ValueError(f"instance_type '{instance_type}': {family} accelerators have no hubserve equivalent")
    multiple = _multiple(size)
    if _GPU_FAMILY.match(family):
        if multiple is None:
            raise ValueError(f"instance_type '{instance_type}': GPU instances start at .xlarge")
        return _GPU_BY_SIZE.get(size, "gpu-large")
    if size in _CPU_BY_SIZE:
        return _CPU_BY_SIZE[size]
    if multiple is None:
        raise ValueError(f"instance_type '{instance_type}': unknown size '{size}'")
    return "cpu-xlarge"


def _multiple(size: str) -> int | None:
    """2 for '2xlarge', 1 for 'xlarge', None for sizes below xlarge."""
    if not size.endswith("xlarge"):
        return None
    digits = size.removesuffix("xlarge")
    return int(digits) if digits else 1
