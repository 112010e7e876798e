"""Batch transform: a dataset's records through an endpoint's model, on the job's own replicas.

    spec.py       the job request and its limits
    records.py    splitting inputs into records; output and error lines
    parts.py      per-file part files and their assembly into the output
    execution.py  one run of one job: chunks to a ``ChunkComputer``, ordered commits
    through_gateway.py  chunks on the job's own replica through the gateway (kind ``batch``)
    ray_data.py   chunks on Ray Data, an actor pool holding the model (the Ray backend)
    runner.py     create / stop / start / resume, as the API calls them

Control and the gateway are reached only through protocols (``JobReplicas``, ``hubserve.types.Invoker``);
the composition root wires them and picks the computer. ray_data.py imports Ray only when it runs.
"""
