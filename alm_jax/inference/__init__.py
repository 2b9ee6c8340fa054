"""Inference engines that drive any `alm_jax.models.protocol.Mixer`: offline, streaming, export."""
