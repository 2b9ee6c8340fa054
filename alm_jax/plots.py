"""The gain plot that `alm_jax.mix` writes with each song (gains.png); it lives in `alm_jax.evaluation.plots`."""

from alm_jax.evaluation.plots import plot_gains  # pylint: disable=unused-import
