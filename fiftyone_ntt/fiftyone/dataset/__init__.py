"""The lowest layer of the adapter: the execution store (one accessor), the names NTT writes
(fields, tags, attributes) and the one ``Detections``-field check, labels <-> library types,
video decoding and the model cache. Imports nothing else of this package.
"""
