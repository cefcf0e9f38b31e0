"""A model of a user's own partially labelled images: train, save, load, predict, evaluate, export.
"""
