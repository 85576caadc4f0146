/*
 * kwstool._native: the firmware's portable C (firmware/lib/...) exposed to Python.
 * Thin wrappers over caller-provided buffers; every call releases the GIL while the C runs, so
 * Python threads can compute features on several cores.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "kws_frontend.h"

/* clips_int8(audio, clip_len, out, frames): audio is int16 (B * clip_len), out is int8
 * (B * frames * 40). Each clip starts from a fresh front-end state. */
static PyObject *clips_int8(PyObject *self, PyObject *args) {
  (void)self;
  Py_buffer audio, out;
  Py_ssize_t clip_len, frames;
  if (!PyArg_ParseTuple(args, "y*nw*n", &audio, &clip_len, &out, &frames)) return NULL;
  PyObject *result = NULL;
  const Py_ssize_t n_samples = audio.len / (Py_ssize_t)sizeof(int16_t);
  if (clip_len <= 0 || frames <= 0 || n_samples % clip_len != 0) {
    PyErr_SetString(PyExc_ValueError, "audio length must be a positive multiple of clip_len");
    goto done;
  }
  const Py_ssize_t clips = n_samples / clip_len;
  if (out.len != clips * frames * KWS_FRONTEND_NUM_CHANNELS) {
    PyErr_SetString(PyExc_ValueError, "out must hold clips * frames * 40 int8 values");
    goto done;
  }
  Py_BEGIN_ALLOW_THREADS
  kws_frontend_state state;
  const int16_t *a = (const int16_t *)audio.buf;
  int8_t *o = (int8_t *)out.buf;
  for (Py_ssize_t c = 0; c < clips; ++c) {
    int8_t *dst = o + c * frames * KWS_FRONTEND_NUM_CHANNELS;
    const size_t got =
        kws_frontend_clip_int8(&state, a + c * clip_len, (size_t)clip_len, dst, (size_t)frames);
    /* a clip too short for all frames leaves the rest at the floor value */
    for (size_t i = got * KWS_FRONTEND_NUM_CHANNELS; i < (size_t)frames * KWS_FRONTEND_NUM_CHANNELS;
         ++i)
      dst[i] = -128;
  }
  Py_END_ALLOW_THREADS
  result = Py_None;
  Py_INCREF(result);
done:
  PyBuffer_Release(&audio);
  PyBuffer_Release(&out);
  return result;
}

/* stream_uint16(audio, out) -> frames: raw uint16 channel values for one stream of any length,
 * out holding max_frames * 40 uint16. */
static PyObject *stream_uint16(PyObject *self, PyObject *args) {
  (void)self;
  Py_buffer audio, out;
  if (!PyArg_ParseTuple(args, "y*w*", &audio, &out)) return NULL;
  const size_t n = (size_t)audio.len / sizeof(int16_t);
  const size_t max_frames = (size_t)out.len / (sizeof(uint16_t) * KWS_FRONTEND_NUM_CHANNELS);
  size_t frames = 0;
  Py_BEGIN_ALLOW_THREADS
  kws_frontend_state state;
  kws_frontend_init(&state);
  const int16_t *a = (const int16_t *)audio.buf;
  uint16_t *o = (uint16_t *)out.buf;
  size_t left = n;
  while (left > 0 && frames < max_frames) {
    size_t used = 0;
    if (kws_frontend_process(&state, a, left, &used, o + frames * KWS_FRONTEND_NUM_CHANNELS))
      ++frames;
    a += used;
    left -= used;
  }
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&audio);
  PyBuffer_Release(&out);
  return PyLong_FromSize_t(frames);
}

/* ---- recognizer bindings (firmware/lib/kws_recognizer) go below this line ---- */
#include "kws_recognizer.h"

/* Recognizer settings from Python: thresholds is an int 0..255 (every label) or a buffer of
 * num_labels uint8. Returns 0, or -1 with a ValueError set. */
static int make_config(kws_recognizer_config *c, unsigned int num_labels, unsigned long window_ms,
                       unsigned long suppression_ms, PyObject *thresholds,
                       unsigned long coverage_ms, unsigned long ignore_mask) {
  memset(c, 0, sizeof(*c));
  if (num_labels == 0 || num_labels > KWS_RECOGNIZER_MAX_LABELS || window_ms > 0xFFFFFFFFul ||
      suppression_ms > 0xFFFFFFFFul || coverage_ms > 0xFFFFFFFFul || ignore_mask > 0xFFFFFFFFul) {
    PyErr_SetString(PyExc_ValueError, "invalid recognizer settings");
    return -1;
  }
  c->average_window_ms = (uint32_t)window_ms;
  c->suppression_ms = (uint32_t)suppression_ms;
  c->minimum_coverage_ms = (uint32_t)coverage_ms;
  c->num_labels = (uint8_t)num_labels;
  c->ignore_mask = (uint32_t)ignore_mask;
  if (PyLong_Check(thresholds)) {
    const long t = PyLong_AsLong(thresholds);
    if (t < 0 || t > 255) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "threshold must be 0..255");
      return -1;
    }
    kws_recognizer_set_threshold(c, (uint8_t)t);
  } else {
    Py_buffer b;
    if (PyObject_GetBuffer(thresholds, &b, PyBUF_SIMPLE) != 0) return -1;
    const int ok = b.len == (Py_ssize_t)num_labels;
    if (ok) memcpy(c->thresholds, b.buf, num_labels);
    PyBuffer_Release(&b);
    if (!ok) {
      PyErr_SetString(PyExc_ValueError, "thresholds must hold num_labels uint8 values");
      return -1;
    }
  }
  if (!kws_recognizer_config_valid(c)) {
    PyErr_SetString(PyExc_ValueError,
                    "invalid recognizer settings: need 0 < window <= 3000 ms "
                    "and minimum coverage < window");
    return -1;
  }
  return 0;
}

/* recognize(scores, times, num_labels, window_ms, thresholds, suppression_ms,
 * minimum_coverage_ms, ignore_mask) -> [(index, time_ms, label, score, count)]: one recognizer,
 * fresh, over T results; scores is uint8 (T * num_labels), times uint32 (T); thresholds an int
 * (every label) or num_labels uint8. Lists the detections. */
static PyObject *recognize(PyObject *self, PyObject *args) {
  (void)self;
  Py_buffer scores, times;
  unsigned int num_labels;
  unsigned long window_ms, suppression_ms, coverage_ms, ignore_mask;
  PyObject *thresholds;
  if (!PyArg_ParseTuple(args, "y*y*IkOkkk", &scores, &times, &num_labels, &window_ms, &thresholds,
                        &suppression_ms, &coverage_ms, &ignore_mask))
    return NULL;
  PyObject *result = NULL;
  kws_recognizer *r = NULL;
  kws_recognizer_config config;
  const Py_ssize_t steps = times.len / (Py_ssize_t)sizeof(uint32_t);
  if (make_config(&config, num_labels, window_ms, suppression_ms, thresholds, coverage_ms,
                  ignore_mask) != 0)
    goto done;
  if (times.len % (Py_ssize_t)sizeof(uint32_t) != 0 ||
      scores.len != steps * (Py_ssize_t)num_labels) {
    PyErr_SetString(PyExc_ValueError, "scores must hold len(times) * num_labels uint8 values");
    goto done;
  }
  r = (kws_recognizer *)PyMem_Malloc(sizeof(*r));
  if (r == NULL) {
    PyErr_NoMemory();
    goto done;
  }
  kws_recognizer_init(r, &config);
  result = PyList_New(0);
  if (result == NULL) goto done;
  for (Py_ssize_t t = 0; t < steps; ++t) {
    kws_recognition rec;
    uint32_t time_ms;
    memcpy(&time_ms, (const char *)times.buf + t * sizeof(uint32_t), sizeof(time_ms));
    if (!kws_recognizer_process(r, (const uint8_t *)scores.buf + t * num_labels, time_ms, &rec))
      continue;
    PyObject *item =
        Py_BuildValue("(nkIII)", t, (unsigned long)rec.time_ms, (unsigned int)rec.label,
                      (unsigned int)rec.score, (unsigned int)rec.count);
    if (item == NULL || PyList_Append(result, item) != 0) {
      Py_XDECREF(item);
      Py_CLEAR(result);
      goto done;
    }
    Py_DECREF(item);
  }
done:
  PyMem_Free(r);
  PyBuffer_Release(&scores);
  PyBuffer_Release(&times);
  return result;
}

/* ---- Recognizer: kws_recognizer as a Python object, one result at a time ---- */
typedef struct {
  PyObject_HEAD
  kws_recognizer rec;
} RecognizerObject;

static int Recognizer_init(RecognizerObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"num_labels", "average_window_ms",   "suppression_ms",
                           "thresholds", "minimum_coverage_ms", "ignore_mask",
                           NULL};
  unsigned int num_labels;
  unsigned long window_ms, suppression_ms, coverage_ms = 0, ignore_mask = 0;
  PyObject *thresholds;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "IkkO|kk", kwlist, &num_labels, &window_ms,
                                   &suppression_ms, &thresholds, &coverage_ms, &ignore_mask))
    return -1;
  kws_recognizer_config c;
  if (make_config(&c, num_labels, window_ms, suppression_ms, thresholds, coverage_ms,
                  ignore_mask) != 0)
    return -1;
  kws_recognizer_init(&self->rec, &c);
  return 0;
}

/* process(scores, time_ms) -> None, or (label, score, time_ms) for a detection */
static PyObject *Recognizer_process(RecognizerObject *self, PyObject *args) {
  Py_buffer scores;
  unsigned long time_ms;
  if (!PyArg_ParseTuple(args, "y*k", &scores, &time_ms)) return NULL;
  if (scores.len != (Py_ssize_t)self->rec.config.num_labels || time_ms > 0xFFFFFFFFul) {
    PyBuffer_Release(&scores);
    PyErr_SetString(PyExc_ValueError, "scores must hold num_labels uint8 values; time_ms a uint32");
    return NULL;
  }
  kws_recognition r;
  const int hit =
      kws_recognizer_process(&self->rec, (const uint8_t *)scores.buf, (uint32_t)time_ms, &r);
  PyBuffer_Release(&scores);
  if (!hit) Py_RETURN_NONE;
  return Py_BuildValue("(IIk)", (unsigned int)r.label, (unsigned int)r.score,
                       (unsigned long)r.time_ms);
}

static PyObject *Recognizer_reset(RecognizerObject *self, PyObject *unused) {
  (void)unused;
  kws_recognizer_reset(&self->rec);
  Py_RETURN_NONE;
}

static PyObject *Recognizer_num_labels(RecognizerObject *self, void *closure) {
  (void)closure;
  return PyLong_FromLong(self->rec.config.num_labels);
}

static PyMethodDef Recognizer_methods[] = {
    {"process", (PyCFunction)Recognizer_process, METH_VARARGS,
     "process(scores uint8[num_labels], time_ms) -> None or (label, score, time_ms)."},
    {"reset", (PyCFunction)Recognizer_reset, METH_NOARGS, "Forget all results (new stream)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Recognizer_getset[] = {
    {"num_labels", (getter)Recognizer_num_labels, NULL, "labels per result", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RecognizerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kwstool._native.Recognizer",
    .tp_basicsize = sizeof(RecognizerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc =
        "Recognizer(num_labels, average_window_ms, suppression_ms, thresholds, "
        "minimum_coverage_ms=0, ignore_mask=0): firmware/lib/kws_recognizer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Recognizer_init,
    .tp_methods = Recognizer_methods,
    .tp_getset = Recognizer_getset,
};

/* ---- FeatureStream: kws_feature_provider, a continuous stream -> the 49 x 40 window ---- */
#include "kws_feature_provider.h"

typedef struct {
  PyObject_HEAD
  kws_feature_provider fp;
} FeatureStreamObject;

static int FeatureStream_init(FeatureStreamObject *self, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "", kwlist)) return -1;
  kws_feature_provider_reset(&self->fp);
  return 0;
}

/* feed(int16 samples) -> frames completed */
static PyObject *FeatureStream_feed(FeatureStreamObject *self, PyObject *args) {
  Py_buffer audio;
  if (!PyArg_ParseTuple(args, "y*", &audio)) return NULL;
  if (audio.len % (Py_ssize_t)sizeof(int16_t) != 0) {
    PyBuffer_Release(&audio);
    PyErr_SetString(PyExc_ValueError, "samples must be int16");
    return NULL;
  }
  size_t frames = 0;
  Py_BEGIN_ALLOW_THREADS
  const int16_t *a = (const int16_t *)audio.buf;
  size_t left = (size_t)audio.len / sizeof(int16_t);
  while (left > 0) {
    size_t used = 0;
    frames += (size_t)kws_feature_provider_feed(&self->fp, a, left, &used);
    a += used;
    left -= used;
  }
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&audio);
  return PyLong_FromSize_t(frames);
}

/* window(out int8[49 * 40]): the window, oldest frame first */
static PyObject *FeatureStream_window(FeatureStreamObject *self, PyObject *args) {
  Py_buffer out;
  if (!PyArg_ParseTuple(args, "w*", &out)) return NULL;
  if (out.len != KWS_FP_WINDOW_VALUES) {
    PyBuffer_Release(&out);
    PyErr_SetString(PyExc_ValueError, "out must hold 49 * 40 int8 values");
    return NULL;
  }
  kws_feature_provider_window(&self->fp, (int8_t *)out.buf, NULL);
  PyBuffer_Release(&out);
  Py_RETURN_NONE;
}

static PyObject *FeatureStream_reset(FeatureStreamObject *self, PyObject *unused) {
  (void)unused;
  kws_feature_provider_reset(&self->fp);
  Py_RETURN_NONE;
}

static PyObject *FeatureStream_frames(FeatureStreamObject *self, void *closure) {
  (void)closure;
  return PyLong_FromUnsignedLong(self->fp.frames);
}

static PyObject *FeatureStream_time_ms(FeatureStreamObject *self, void *closure) {
  (void)closure;
  return PyLong_FromUnsignedLong(kws_feature_provider_time_ms(&self->fp));
}

static PyMethodDef FeatureStream_methods[] = {
    {"feed", (PyCFunction)FeatureStream_feed, METH_VARARGS,
     "feed(int16 samples) -> number of frames completed."},
    {"window", (PyCFunction)FeatureStream_window, METH_VARARGS,
     "window(out int8[49 * 40]): the last 49 frames, oldest first (-128 before the first)."},
    {"reset", (PyCFunction)FeatureStream_reset, METH_NOARGS, "Start a new stream."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef FeatureStream_getset[] = {
    {"frames", (getter)FeatureStream_frames, NULL, "frames completed since reset", NULL},
    {"time_ms", (getter)FeatureStream_time_ms, NULL, "audio time consumed since reset, ms", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FeatureStreamType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kwstool._native.FeatureStream",
    .tp_basicsize = sizeof(FeatureStreamObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FeatureStream(): firmware/lib/kws_feature_provider, 16 kHz int16 -> 49 x 40 int8.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FeatureStream_init,
    .tp_methods = FeatureStream_methods,
    .tp_getset = FeatureStream_getset,
};

/* scores_u8(raw, scale, zero_point, out): int8 model outputs -> uint8 recognizer scores. */
static PyObject *scores_u8(PyObject *self, PyObject *args) {
  (void)self;
  Py_buffer raw, out;
  float scale;
  int zero_point;
  if (!PyArg_ParseTuple(args, "y*fiw*", &raw, &scale, &zero_point, &out)) return NULL;
  PyObject *result = NULL;
  if (out.len != raw.len) {
    PyErr_SetString(PyExc_ValueError, "out must have the size of raw");
  } else {
    const int32_t m = kws_recognizer_score_multiplier(scale);
    for (Py_ssize_t i = 0; i < raw.len; ++i)
      ((uint8_t *)out.buf)[i] = kws_recognizer_score(((const int8_t *)raw.buf)[i], zero_point, m);
    result = Py_None;
    Py_INCREF(result);
  }
  PyBuffer_Release(&raw);
  PyBuffer_Release(&out);
  return result;
}

static PyMethodDef methods[] = {
    {"clips_int8", clips_int8, METH_VARARGS, "Features of fixed-length clips as int8."},
    {"stream_uint16", stream_uint16, METH_VARARGS, "Raw uint16 features of one stream."},
    /* ---- recognizer method table entries go below this line ---- */
    {"recognize", recognize, METH_VARARGS, "Detections of the C recognizer over a score sequence."},
    {"scores_u8", scores_u8, METH_VARARGS, "int8 model outputs to 0..255 recognizer scores."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "kwstool._native",
    "The firmware's C front end (and recognizer), compiled for the host.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

#ifndef KWS_FRONTEND_HASH
#error "build kwstool._native with setup.py: it defines KWS_FRONTEND_HASH (the front end's hash)"
#endif

PyMODINIT_FUNC PyInit__native(void) {
  if (PyType_Ready(&RecognizerType) < 0 || PyType_Ready(&FeatureStreamType) < 0) return NULL;
  PyObject *m = PyModule_Create(&module);
  if (m == NULL) return NULL;
  Py_INCREF(&RecognizerType);
  Py_INCREF(&FeatureStreamType);
  if (PyModule_AddObject(m, "Recognizer", (PyObject *)&RecognizerType) < 0 ||
      PyModule_AddObject(m, "FeatureStream", (PyObject *)&FeatureStreamType) < 0) {
    Py_DECREF(&RecognizerType);
    Py_DECREF(&FeatureStreamType);
    Py_DECREF(m);
    return NULL;
  }
  PyModule_AddIntConstant(m, "SAMPLE_RATE", KWS_FRONTEND_SAMPLE_RATE);
  PyModule_AddIntConstant(m, "WINDOW_SAMPLES", KWS_FRONTEND_WINDOW_SAMPLES);
  PyModule_AddIntConstant(m, "STRIDE_SAMPLES", KWS_FRONTEND_STRIDE_SAMPLES);
  PyModule_AddIntConstant(m, "NUM_CHANNELS", KWS_FRONTEND_NUM_CHANNELS);
  PyModule_AddIntConstant(m, "CLIP_FRAMES", KWS_FRONTEND_CLIP_FRAMES);
  PyModule_AddIntConstant(m, "CLIP_SAMPLES", KWS_FRONTEND_CLIP_SAMPLES);
  PyModule_AddIntConstant(m, "WINDOW_MS", KWS_FRONTEND_WINDOW_MS);
  PyModule_AddIntConstant(m, "STRIDE_MS", KWS_FRONTEND_STRIDE_MS);
  PyModule_AddIntConstant(m, "STATE_BYTES", (long)sizeof(kws_frontend_state));
  PyModule_AddIntConstant(m, "RECOGNIZER_MAX_LABELS", KWS_RECOGNIZER_MAX_LABELS);
  PyModule_AddIntConstant(m, "RECOGNIZER_MAX_WINDOW_MS", KWS_RECOGNIZER_MAX_WINDOW_MS);
  /* front-end parameters and the hash of its sources (setup.py: -DKWS_FRONTEND_HASH="...") */
  PyModule_AddIntConstant(m, "LOWER_BAND_HZ", KWS_FRONTEND_LOWER_BAND_HZ);
  PyModule_AddIntConstant(m, "UPPER_BAND_HZ", KWS_FRONTEND_UPPER_BAND_HZ);
  PyModule_AddIntConstant(m, "NOISE_SMOOTHING_BITS", KWS_FRONTEND_NOISE_SMOOTHING_BITS);
  PyModule_AddObject(m, "NOISE_EVEN_SMOOTHING",
                     PyFloat_FromDouble(KWS_FRONTEND_NOISE_EVEN_SMOOTHING));
  PyModule_AddObject(m, "NOISE_ODD_SMOOTHING",
                     PyFloat_FromDouble(KWS_FRONTEND_NOISE_ODD_SMOOTHING));
  PyModule_AddObject(m, "NOISE_MIN_SIGNAL_REMAINING",
                     PyFloat_FromDouble(KWS_FRONTEND_NOISE_MIN_SIGNAL_REMAINING));
  PyModule_AddObject(m, "PCAN_STRENGTH", PyFloat_FromDouble(KWS_FRONTEND_PCAN_STRENGTH));
  PyModule_AddObject(m, "PCAN_OFFSET", PyFloat_FromDouble(KWS_FRONTEND_PCAN_OFFSET));
  PyModule_AddIntConstant(m, "PCAN_GAIN_BITS", KWS_FRONTEND_PCAN_GAIN_BITS);
  PyModule_AddIntConstant(m, "LOG_SCALE_SHIFT", KWS_FRONTEND_LOG_SCALE_SHIFT);
  PyModule_AddStringConstant(m, "FRONTEND_HASH", KWS_FRONTEND_HASH);
  return m;
}
