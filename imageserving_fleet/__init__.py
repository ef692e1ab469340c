"""imageserving-fleet: run Image Serving components on one host or on hundreds.

Kept empty on purpose: the status client imports this package, so nothing heavy may live here.
"""

__version__ = "0.1.0"
