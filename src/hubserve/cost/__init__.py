"""The cost model: serverless by the millisecond against always-on instances by the hour.

``pricing`` loads and validates the price list, ``model`` does the arithmetic, ``usage``
maps an endpoint's metrics to it, ``presets`` holds the seed's models, ``plot`` draws Figure 1.
"""
