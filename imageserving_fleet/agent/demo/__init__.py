"""The demo stack: three small standard-library services in the Image Serving topology.

``imageserver`` ("is") renders PNG images over a line protocol, ``svgserver`` ("svg") renders SVG
documents over the same protocol, and ``platformserver`` ("ps") answers HTTP and forwards to both.
``demo.yaml`` beside them is the agent's packaged default configuration, so a new user sees the whole
product supervise real processes on real ports with one ``imageserving start``.
"""
