"""Datasets and the input pipeline.

  common.py     the features every multitrack dataset stores (int16 audio + scales)
  medleydb.py   tfds builder 'medleydb' (reads a manual download of MedleyDB V1/V2)
  synthetic.py  tfds builder 'synthetic_live' (generated, no download)
  bleed.py      the RIR bank and on-the-fly bleed / level randomisation
  pipeline.py   make_train_iterator / make_eval_batches / num_train_songs

Importing `alm_jax.data.medleydb` or `alm_jax.data.synthetic` registers its
builder with tfds; `pipeline` imports both.
"""
