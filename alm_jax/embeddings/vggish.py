"""The 'vggish' embedding: the released VGGish network on its own log-mel front end.

Its pieces: the network (`vggish_network`), the front end (`vggish_frontend`), the
converter of the TF and torch releases (`vggish_weights`; `config.model.embedding.weights`
names the file) and the release's PCA (`vggish_pca`, not used by the mixers).
"""

from alm_jax.embeddings import base
from alm_jax.embeddings import vggish_frontend
from alm_jax.embeddings import vggish_network
from alm_jax.embeddings import vggish_weights

# This jaxlib hands convolutions to YNNPACK on CPU by default; for VGGish's 3x3
# convolutions Eigen's are faster: the forward at batch 64 went from 0.95x to
# 0.65x torchvggish's time, offline mixing with VGGish from 3.9x to 5.4x real
# time (the small embedding's convolutions are faster in YNNPACK, so it keeps the
# default). bench/vggish_vs_torch.py (variant 'ynn') and bench/README.md.
CPU_COMPILER_OPTIONS = {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'}


def build(embedding_config, dtype, name='embedding') -> vggish_network.VGGish:
  return vggish_network.VGGish(dim=embedding_config.dim, fc2_relu=embedding_config.fc2_relu,
                               dtype=dtype, name=name)


def load_pretrained(params, embedding_config):
  """`params` with the VGGish weights at config.model.embedding.weights (unchanged when unset)."""
  return vggish_weights.load_pretrained_embedding(params, embedding_config)


EMBEDDING = base.Embedding(
    name='vggish', build=build, frontend=vggish_frontend.VGGishFrontend.from_config,
    merge_pretrained=load_pretrained,
    cpu_compiler_options=CPU_COMPILER_OPTIONS, has_weights=True,
    description='VGGish (AudioSet release), 128-d, ~1.7 GFLOP per patch')
