"""The replica process: loads one endpoint's model once and serves framed requests on a Unix socket.

Imports nothing from the server side (api, gateway, control, backends); only hubserve.models,
hubserve.errors and its own protocol.
"""
