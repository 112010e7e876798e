"""The replica process: loads one endpoint's model once and serves framed requests on a Unix socket.

Imports nothing from the server side (api, gateway, control, backends); only hubserve.models,
hubserve.errors, hubserve.logs.stamp (its own log lines) and its own protocol and launch structure.
"""
