"""Objective evaluation of mixers and the listening page (`python -m alm_jax.evaluate`).

`systems` restores the mixers under evaluation and mixes with them, `examples`
draws the evaluation examples from the data pipeline, `run` is the evaluation
loop, `report` writes the tables, `plots` and `listening_page` the figures and
the page (docs/evaluation.md). Nothing is imported here, so that
`alm_jax.mix` can use `evaluation.plots` without loading the rest.
"""
