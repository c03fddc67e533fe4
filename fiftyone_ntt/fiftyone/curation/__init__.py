"""Choosing and judging instances: references (tag, untag, sample), decisions on predictions
(accept, reject, untag; the curated field), references from video frames and the App's
selection. Imports only :mod:`..dataset`.
"""
