/*
 * kwstool._native: the firmware's portable C (firmware/lib/...) exposed to Python.
 * Thin wrappers over caller-provided buffers; every call releases the GIL while the C runs, so
 * Python threads can compute features on several cores.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

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
    const size_t got = kws_frontend_clip_int8(&state, a + c * clip_len, (size_t)clip_len, dst,
                                              (size_t)frames);
    /* a clip too short for all frames leaves the rest at the floor value */
    for (size_t i = got * KWS_FRONTEND_NUM_CHANNELS; i < (size_t)frames * KWS_FRONTEND_NUM_CHANNELS; ++i)
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
    if (kws_frontend_process(&state, a, left, &used, o + frames * KWS_FRONTEND_NUM_CHANNELS)) ++frames;
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

/* recognize(scores, times, num_labels, window_ms, threshold, suppression_ms, min_count,
 * ignore_mask) -> [(index, time_ms, label, score, count)]: one recognizer, fresh, over T results;
 * scores is uint8 (T * num_labels), times uint32 (T). Lists the detections. */
static PyObject *recognize(PyObject *self, PyObject *args) {
  (void)self;
  Py_buffer scores, times;
  unsigned int num_labels, threshold, min_count;
  unsigned long window_ms, suppression_ms, ignore_mask;
  if (!PyArg_ParseTuple(args, "y*y*IkIkIk", &scores, &times, &num_labels, &window_ms, &threshold,
                        &suppression_ms, &min_count, &ignore_mask))
    return NULL;
  PyObject *result = NULL;
  kws_recognizer *r = NULL;
  const kws_recognizer_config config = {
      (uint32_t)window_ms, (uint32_t)suppression_ms, (uint8_t)threshold, (uint8_t)min_count,
      (uint8_t)num_labels, (uint32_t)ignore_mask};
  const Py_ssize_t steps = times.len / (Py_ssize_t)sizeof(uint32_t);
  if (num_labels == 0 || num_labels > KWS_RECOGNIZER_MAX_LABELS || threshold > 255 ||
      min_count > 255 || window_ms > 0xFFFFFFFFul || suppression_ms > 0xFFFFFFFFul ||
      !kws_recognizer_config_valid(&config)) {
    PyErr_SetString(PyExc_ValueError, "invalid recognizer settings");
    goto done;
  }
  if (times.len % (Py_ssize_t)sizeof(uint32_t) != 0 || scores.len != steps * (Py_ssize_t)num_labels) {
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
    if (!kws_recognizer_process(r, (const uint8_t *)scores.buf + t * num_labels, time_ms, &rec)) continue;
    PyObject *item = Py_BuildValue("(nkIII)", t, (unsigned long)rec.time_ms, (unsigned int)rec.label,
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
    PyModuleDef_HEAD_INIT, "kwstool._native",
    "The firmware's C front end (and recognizer), compiled for the host.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
  PyObject *m = PyModule_Create(&module);
  if (m == NULL) return NULL;
  PyModule_AddIntConstant(m, "SAMPLE_RATE", KWS_FRONTEND_SAMPLE_RATE);
  PyModule_AddIntConstant(m, "WINDOW_SAMPLES", KWS_FRONTEND_WINDOW_SAMPLES);
  PyModule_AddIntConstant(m, "STRIDE_SAMPLES", KWS_FRONTEND_STRIDE_SAMPLES);
  PyModule_AddIntConstant(m, "NUM_CHANNELS", KWS_FRONTEND_NUM_CHANNELS);
  PyModule_AddIntConstant(m, "CLIP_FRAMES", KWS_FRONTEND_CLIP_FRAMES);
  PyModule_AddIntConstant(m, "CLIP_SAMPLES", KWS_FRONTEND_CLIP_SAMPLES);
  PyModule_AddIntConstant(m, "WINDOW_MS", KWS_FRONTEND_WINDOW_MS);
  PyModule_AddIntConstant(m, "STRIDE_MS", KWS_FRONTEND_STRIDE_MS);
  PyModule_AddIntConstant(m, "STATE_BYTES", (long)sizeof(kws_frontend_state));
  return m;
}
