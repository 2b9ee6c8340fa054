"""alm_jax: the AiLive Mixer in JAX/Flax."""
import setuptools

setuptools.setup(
    name="alm_jax",
    version="0.1.0",
    description="AiLive Mixer: zero-latency deep-learning automatic mixing of live multitrack audio, in JAX/Flax.",
    packages=setuptools.find_packages(include=["alm_jax", "alm_jax.*"]),
    package_data={"alm_jax": ["data/*.json", "embeddings/weights/*.npz", "embeddings/weights/*.txt",
                           "pretrained/**/*"]},  # shipped mixers: orbax step folders
    # The live mixer's audio callback in C (alm_jax/live/native.py loads it with ctypes). Optional:
    # without a C compiler the install goes on and `alm_jax.live` uses its Python callback.
    ext_modules=[setuptools.Extension("alm_jax.live._rtcore", ["alm_jax/live/rtcore.c"],
                                      extra_compile_args=["-O3"], libraries=["dl", "m"],
                                      optional=True)],
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.10.2,<0.11",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "etils[epath]>=1.7",  # alm_jax.paths: local or gs:// workdirs (orbax needs it too)
        "numpy>=2.0,<3",
        "scipy>=1.13",
        "soundfile>=0.13",
        "tensorflow-cpu>=2.21,<2.22",
        "tensorflow-datasets>=4.9.10,<4.10",
        "importlib-resources>=6.0",  # needed by tfds' builder code paths (etils.epath), not pulled in
        "absl-py>=2.1",
        "ml-collections>=1.1,<1.2",
        "chex>=0.1.90",
        "pyyaml>=6.0",
        "music21>=9.1",  # rendered_live: the corpus works and folk tunes
        "pyfluidsynth>=1.3.4",  # rendered_live: FluidSynth (Debian libfluidsynth3) from Python
        "pyroomacoustics>=0.10,<0.11",
        "pyloudnorm>=0.2",
        "matplotlib>=3.9",
        "tqdm>=4.66",
        "JACK-Client>=0.5.4",  # alm_jax.live (needs libjack: Debian jackd2 or PipeWire's JACK)
        "python-osc>=1.8",  # alm_jax.live: OSC control
        "rich>=13",  # alm_jax.live: terminal meters
    ],
    extras_require={
        # The test suite (README: tools/setup.sh installs it with the system packages).
        "test": [
            # Below 9.2: pytest 9.2 keeps a node's id in `_id`, and pytest-xdist 3.8 still renames
            # `_nodeid` for --dist loadgroup, so its groups (pytest.ini) silently stop holding:
            # the training tests then compile their shared step on both workers.
            "pytest>=8,<9.2",
            "pytest-xdist>=3.6",
            "hypothesis>=6.100",  # tests/test_bad_inputs.py: fuzzing of audio and checkpoint files
            "playwright>=1.40",  # tests: drives Debian's chromium through the listening-test page
            "librosa>=0.10",  # tests/test_musicnn.py: the log-mel against librosa's
        ],
        "torch": ["torch>=2.9"],  # loads torchvggish weights (docs/vggish.md)
        # --format=onnx export and its tests (docs/deploy.md). jax2onnx 0.13.0 is the newest
        # release whose requirements admit our orbax-checkpoint (0.13.1 to 0.17.1 declare
        # orbax-checkpoint<0.11.37, which they do not use for this export).
        "onnx": ["onnx>=1.23,<1.24", "onnxruntime>=1.32,<1.33", "onnx-ir>=1.1,<1.2",
                 "jax2onnx==0.13.0"],
    },
)
