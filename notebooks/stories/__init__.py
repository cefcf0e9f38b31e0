"""The stories the notebooks of this folder tell, one module a kind of notebook.

- :mod:`stories.cells`: markdown and code cells, a notebook, the first steps every notebook
  shares (parameters, install, machine);
- :mod:`stories.datasets`: what differs from COCO to NUS-WIDE, as data;
- :mod:`stories.preprocessing`, :mod:`stories.training`, :mod:`stories.results`: one story each,
  told for either data set;
- :mod:`stories.demo`, :mod:`stories.own_data`: the notebooks that stand alone.

``notebooks/build_notebooks.py`` writes them.
"""
