"""What the package does with its layers: the experiment grid, tables and figures of runs, the
offline demo, and a model of one's own data.
"""
