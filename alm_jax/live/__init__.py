"""Live mixing: `python -m alm_jax.live` mixes an audio interface's channels in real time (JACK).

The package splits the program by thread: `engine` (the audio callback's work
and the worker thread that runs the streaming step once per F2 frame),
`rtcore.c` with `native` (the same callback in C, run by JACK's thread without
the GIL),
`controls` (the engineer's controls and the safety limits), `recorder`
(streaming a show to disk), `drivers` (the JACK client, the file player and the
JACK-free driver), `ui` (terminal meters and the OSC server) and `__main__`
(flags). Design, controls, OSC addresses and fault behaviour: docs/live.md.
"""
