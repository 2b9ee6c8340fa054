/* The live mixer's audio callback in C: what `Engine.process_python` does, without the GIL.
 *
 * A Python JACK callback has to take the GIL on every period, so any Python
 * thread of the process (the worker between XLA calls, the recorder, the UI)
 * can make it late. This file is the same per-period work as
 * alm_jax/live/engine.py's `Engine.process_python`, on the same NumPy arrays
 * (the struct below holds their addresses), run by JACK's real-time thread
 * without entering Python. It also holds the --play file player's callback and its mirror
 * image, a client capturing ports into a buffer (the tests' and benches' probe).
 * Python keeps everything else: the client, its ports, the non-real-time
 * callbacks (xrun, shutdown, connections) through the JACK-Client package.
 *
 * It is loaded with ctypes (alm_jax/live/native.py); libjack is looked up with
 * dlopen, so the build needs no JACK headers. The ordering rules are the
 * Python engine's (docs/live.md): a slot's gains are read only once its stamp
 * says they are complete (acquire), and `written` is published after the ring
 * data (release).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Python imports nothing from here (ctypes loads it), but setuptools builds it
 * as an extension module, so it gets the module's entry point. */
#include <Python.h>
static struct PyModuleDef rtcore_module = {PyModuleDef_HEAD_INIT, "_rtcore",
                                           "alm_jax.live's C audio callback (load with ctypes).",
                                           -1, NULL};
PyMODINIT_FUNC PyInit__rtcore(void) { return PyModule_Create(&rtcore_module); }

/* Indices into `counters` (int64) and the engine's own `values` (float64): keep in step with
 * native.py. The controls' values (master gain, limiter threshold) follow them at the indices
 * v_master and v_limit, which native.py derives from the control table (controls.py). */
enum { C_WRITTEN, C_LATE, C_LAST_LATE, C_PERIODS, C_NONFINITE, C_LIMITED, C_FRAME, C_PERIOD,
       C_FIRST_TIME, C_OVERSIZE, C_COUNT };
enum { V_LIMITER_GAIN, V_RELEASE, V_TAU, V_CB_MAX, V_CB_LAST };

typedef struct {
  int64_t channels, f2, gain_delay, num_slots, ring_size, max_period, late_cap;
  int64_t v_master, v_limit; /* indices into values */
  int64_t buses;      /* 1: a mono mix; 2: left and right (a stereo engine) */
  float *ring;        /* [channels, ring_size] */
  float *mix_ring;    /* [buses, ring_size] */
  float *applied;     /* [channels] */
  float *chan_mult;   /* [channels] 0 for a muted channel */
  float *slot_gains;  /* [num_slots, channels] */
  float *x;           /* [channels, max_period] this period's inputs */
  float *gm;          /* [channels] applied * chan_mult */
  float *gm_first;    /* [channels] the gains of a period's first part when it crosses a frame */
  /* Stereo: the pan-law amplitudes (left row, right row) published per frame and in force. The
   * law itself is evaluated in Python (Engine.publish, alm_jax/stereo.py's pan_law, its one
   * definition: left = cos θ, right = sin θ, θ = (pan + 1) π / 4); here they are only
   * multiplied in, so C and Python apply the same numbers. */
  float *slot_amps;   /* [num_slots, 2, channels] */
  float *amp;         /* [2, channels] */
  float *bus;         /* [2, channels] gm * amp */
  float *bus_first;   /* [2, channels] bus of a period's first part when it crosses a frame */
  int64_t *slot_stamp;  /* [num_slots] */
  int64_t *bad_frame;   /* [channels] */
  int64_t *late_frames; /* [late_cap] */
  int64_t *counters;    /* [C_COUNT] */
  double *values;       /* [5 + the controls'] */
} alm_engine;

/* The struct layout above: native.py refuses a library built from another one (rebuild). */
#define ALM_ABI_VERSION 3
int alm_abi_version(void) { return ALM_ABI_VERSION; }

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* gm = applied * chan_mult, and on a stereo engine bus = gm * amp: what this period applies. */
static void gains_now(alm_engine *e) {
  const int64_t c = e->channels;
  for (int64_t ch = 0; ch < c; ++ch) e->gm[ch] = e->applied[ch] * e->chan_mult[ch];
  if (e->buses == 2)
    for (int64_t s = 0; s < 2; ++s)
      for (int64_t ch = 0; ch < c; ++ch) e->bus[s * c + ch] = e->gm[ch] * e->amp[s * c + ch];
}

/* The gains (and amplitudes) of F2 frame `frame`, if published; else keep the last ones and
 * count a late result. */
static void load(alm_engine *e, int64_t frame) {
  const int64_t c = e->channels, slot = frame % e->num_slots;
  int64_t *k = e->counters;
  if (__atomic_load_n(&e->slot_stamp[slot], __ATOMIC_ACQUIRE) == frame) {
    memcpy(e->applied, e->slot_gains + slot * c, (size_t)c * sizeof(float));
    if (e->buses == 2) memcpy(e->amp, e->slot_amps + slot * 2 * c, (size_t)(2 * c) * sizeof(float));
  } else if (frame > e->gain_delay) { /* frames up to gain_delay have the initial gain by design */
    e->late_frames[k[C_LATE] % e->late_cap] = frame;
    k[C_LATE] += 1;
    k[C_LAST_LATE] = frame;
  }
  k[C_FRAME] = frame;
  gains_now(e);
}

/* mono: mix[0][a:b] = gm . x[:, a:b]; stereo: mix[s][a:b] = bus[s] . x[:, a:b];
 * outs[ch][a:b] = x[ch, a:b] * gm[ch] (the gained channels stay unpanned). */
static void mix_part(const alm_engine *e, const float *gm, const float *bus, float **mix,
                     float **outs, int64_t a, int64_t b) {
  const int64_t c = e->channels, stride = e->max_period;
  for (int64_t s = 0; s < e->buses; ++s) {
    const float *gs = e->buses == 1 ? gm : bus + s * c;
    float *m = mix[s];
    for (int64_t i = a; i < b; ++i) m[i] = 0.0f;
    for (int64_t ch = 0; ch < c; ++ch) {
      const float g = gs[ch], *xr = e->x + ch * stride;
      for (int64_t i = a; i < b; ++i) m[i] += g * xr[i];
    }
  }
  if (outs)
    for (int64_t ch = 0; ch < c; ++ch) {
      const float g = gm[ch], *xr = e->x + ch * stride;
      float *o = outs[ch];
      for (int64_t i = a; i < b; ++i) o[i] = xr[i] * g;
    }
}

static void mix_period(const alm_engine *e, float **mix, float **outs, int64_t split, int64_t n) {
  if (split >= n) {
    mix_part(e, e->gm, e->bus, mix, outs, 0, n);
  } else {
    mix_part(e, e->gm_first, e->bus_first, mix, outs, 0, split);
    mix_part(e, e->gm, e->bus, mix, outs, split, n);
  }
}

/* Rare path: a non-finite sample reached the mix. Zero it, note the channel, mix again. */
static void sanitise(alm_engine *e, float **mix, float **outs, int64_t s0, int64_t split,
                     int64_t n) {
  const int64_t c = e->channels, frame = s0 / e->f2;
  e->counters[C_NONFINITE] += 1;
  for (int64_t ch = 0; ch < c; ++ch) {
    float *xr = e->x + ch * e->max_period;
    int bad = 0;
    for (int64_t i = 0; i < n; ++i)
      if (!isfinite(xr[i])) {
        xr[i] = 0.0f;
        bad = 1;
      }
    if (bad) e->bad_frame[ch] = frame + (split < n ? 1 : 0);
  }
  mix_period(e, mix, outs, split, n);
  for (int64_t s = 0; s < e->buses; ++s)
    for (int64_t i = 0; i < n; ++i)
      if (!isfinite(mix[s][i])) mix[s][i] = 0.0f;
}

/* One period: ins (channels pointers to n samples) -> ring, mix (buses pointers: the mono mix,
 * or left and right) and the gained channels. */
void alm_process(alm_engine *e, float **ins, float **mix, float **outs, int64_t n) {
  const double t0 = now_s();
  const int64_t c = e->channels, f2 = e->f2, nb = e->buses;
  int64_t *k = e->counters;
  double *v = e->values;
  if (n > e->max_period) { /* refused at open and by the blocksize callback; never overrun */
    for (int64_t s = 0; s < nb; ++s) memset(mix[s], 0, (size_t)n * sizeof(float));
    if (outs)
      for (int64_t ch = 0; ch < c; ++ch) memset(outs[ch], 0, (size_t)n * sizeof(float));
    k[C_OVERSIZE] += 1;
    return;
  }
  if (n != k[C_PERIOD]) {
    v[V_RELEASE] = exp((double)n / v[V_TAU]);
    k[C_PERIOD] = n;
  }
  for (int64_t ch = 0; ch < c; ++ch)
    memcpy(e->x + ch * e->max_period, ins[ch], (size_t)n * sizeof(float));
  const int64_t s0 = k[C_WRITTEN], frame = s0 / f2;
  if (frame != k[C_FRAME]) {
    load(e, frame);
  } else { /* a mute changed since the frame began acts from this period */
    gains_now(e);
  }
  const int64_t split = (frame + 1) * f2 - s0; /* samples left in this F2 frame */
  if (split < n) {
    memcpy(e->gm_first, e->gm, (size_t)c * sizeof(float));
    memcpy(e->bus_first, e->bus, (size_t)(2 * c) * sizeof(float));
    load(e, frame + 1);
  }
  mix_period(e, mix, outs, split, n);
  float total = 0.0f;
  for (int64_t s = 0; s < nb; ++s)
    for (int64_t i = 0; i < n; ++i) total += mix[s][i];
  if (!isfinite(total)) sanitise(e, mix, outs, s0, split, n);
  /* Master gain and limiter: one gain per period for both sides (the image stays where the
   * model put it), attack within the period. */
  const float g = (float)v[e->v_master];
  if (g != 1.0f)
    for (int64_t s = 0; s < nb; ++s)
      for (int64_t i = 0; i < n; ++i) mix[s][i] *= g;
  float peak = 0.0f;
  for (int64_t s = 0; s < nb; ++s)
    for (int64_t i = 0; i < n; ++i) peak = fmaxf(peak, fabsf(mix[s][i]));
  double lim = fmin(1.0, v[V_LIMITER_GAIN] * v[V_RELEASE]);
  if ((double)peak * lim > v[e->v_limit]) {
    lim = v[e->v_limit] / (double)peak;
    k[C_LIMITED] += 1;
  }
  v[V_LIMITER_GAIN] = lim;
  if (lim < 1.0) {
    const float l = (float)lim;
    for (int64_t s = 0; s < nb; ++s)
      for (int64_t i = 0; i < n; ++i) mix[s][i] *= l;
  }
  /* Into the rings, then publish the sample count. */
  const int64_t size = e->ring_size, p = s0 % size;
  const int64_t first = n < size - p ? n : size - p;
  for (int64_t ch = 0; ch < c; ++ch) {
    const float *xr = e->x + ch * e->max_period;
    float *r = e->ring + ch * size;
    memcpy(r + p, xr, (size_t)first * sizeof(float));
    if (first < n) memcpy(r, xr + first, (size_t)(n - first) * sizeof(float));
  }
  for (int64_t s = 0; s < nb; ++s) {
    float *r = e->mix_ring + s * size;
    memcpy(r + p, mix[s], (size_t)first * sizeof(float));
    if (first < n) memcpy(r, mix[s] + first, (size_t)(n - first) * sizeof(float));
  }
  __atomic_store_n(&k[C_WRITTEN], s0 + n, __ATOMIC_RELEASE);
  k[C_PERIODS] += 1;
  const double dt = now_s() - t0;
  v[V_CB_LAST] = dt;
  if (dt > v[V_CB_MAX]) v[V_CB_MAX] = dt;
}

/* ---- JACK: the mixer's and the player's process callbacks ---- */

typedef uint32_t jack_nframes_t;
typedef int (*jack_process_cb)(jack_nframes_t, void *);
static void *(*jack_port_get_buffer_)(void *, jack_nframes_t);
static int (*jack_set_process_callback_)(void *, jack_process_cb, void *);
static jack_nframes_t (*jack_last_frame_time_)(const void *);

/* Finds libjack's functions (the JACK-Client package has loaded the library already). 0: ok. */
int alm_jack_load(void) {
  void *h = dlopen("libjack.so.0", RTLD_NOW);
  if (!h) return -1;
  jack_port_get_buffer_ = (void *(*)(void *, jack_nframes_t))dlsym(h, "jack_port_get_buffer");
  jack_set_process_callback_ =
      (int (*)(void *, jack_process_cb, void *))dlsym(h, "jack_set_process_callback");
  jack_last_frame_time_ = (jack_nframes_t(*)(const void *))dlsym(h, "jack_last_frame_time");
  return jack_port_get_buffer_ && jack_set_process_callback_ && jack_last_frame_time_ ? 0 : -2;
}

typedef struct {
  alm_engine *engine;
  void *client;
  int64_t n_out; /* 0 or engine->channels */
  void **in_ports, **mix_ports, **out_ports; /* mix_ports: engine->buses of them */
  float **in_bufs, **mix_bufs, **out_bufs;   /* scratch: this period's port buffers */
} alm_jack_mixer;

static int mixer_process(jack_nframes_t n, void *arg) {
  alm_jack_mixer *m = (alm_jack_mixer *)arg;
  alm_engine *e = m->engine;
  for (int64_t ch = 0; ch < e->channels; ++ch)
    m->in_bufs[ch] = (float *)jack_port_get_buffer_(m->in_ports[ch], n);
  for (int64_t ch = 0; ch < m->n_out; ++ch)
    m->out_bufs[ch] = (float *)jack_port_get_buffer_(m->out_ports[ch], n);
  for (int64_t s = 0; s < e->buses; ++s)
    m->mix_bufs[s] = (float *)jack_port_get_buffer_(m->mix_ports[s], n);
  if (e->counters[C_FIRST_TIME] < 0) e->counters[C_FIRST_TIME] = jack_last_frame_time_(m->client);
  alm_process(e, m->in_bufs, m->mix_bufs, m->n_out ? m->out_bufs : NULL, (int64_t)n);
  return 0;
}

/* Makes mixer_process the client's process callback (before jack_activate). 0: ok. */
int alm_jack_set_mixer(alm_jack_mixer *m) {
  return jack_set_process_callback_(m->client, mixer_process, m);
}

typedef struct {
  void *client;
  int64_t channels, total; /* audio is [channels, total] float32 */
  int64_t capture;         /* 0: play audio into output ports; 1: capture input ports into it */
  float *audio;
  void **ports;
  int64_t *state; /* [0]: next sample, [1]: running (0/1) */
} alm_jack_player;

static int player_process(jack_nframes_t n, void *arg) {
  alm_jack_player *p = (alm_jack_player *)arg;
  const int64_t pos = p->state[0];
  int64_t k = __atomic_load_n(&p->state[1], __ATOMIC_ACQUIRE) ? p->total - pos : 0;
  if (k > (int64_t)n) k = n;
  if (k < 0) k = 0;
  for (int64_t ch = 0; ch < p->channels; ++ch) {
    float *buf = (float *)jack_port_get_buffer_(p->ports[ch], n), *a = p->audio + ch * p->total;
    if (p->capture) {
      if (k > 0) memcpy(a + pos, buf, (size_t)k * sizeof(float));
    } else {
      if (k > 0) memcpy(buf, a + pos, (size_t)k * sizeof(float));
      memset(buf + k, 0, (size_t)(n - k) * sizeof(float));
    }
  }
  __atomic_store_n(&p->state[0], pos + k, __ATOMIC_RELEASE);
  return 0;
}

int alm_jack_set_player(alm_jack_player *p) {
  return jack_set_process_callback_(p->client, player_process, p);
}
