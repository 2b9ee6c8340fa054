"""Datasets and the input pipeline.

  common.py     the features every multitrack dataset stores (int16 audio + scales)
  datasets.py   the registry: one entry per dataset (its builder, what preparing it needs)
  medleydb.py   tfds builder 'medleydb' (reads a manual download of MedleyDB V1/V2)
  synthetic.py  tfds builder 'synthetic_live' (generated, no download)
  rendered.py   tfds builder 'rendered_live' (rendered music in simulated rooms)
  bleed.py      the RIR bank and on-the-fly bleed / level randomisation
  pipeline.py   make_train_iterator / make_eval_batches / num_train_songs

Importing a builder module registers its builder with tfds; `datasets` imports
each, and `pipeline` asks `datasets` for the one config.data.name names.
"""
