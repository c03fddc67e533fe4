"""COCO-style evaluation of prediction fields (images and video frames) and side-by-side
exports.
"""
