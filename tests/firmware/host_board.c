/*
 * host_board: the firmware's serial test mode on a PC, for tests without a board.
 *
 * It is the board's hardware-independent code -- front end, feature provider, pipeline,
 * recognizer, protocol and session, compiled from firmware/lib -- behind a pseudo-terminal
 * instead of a USB serial port. It prints "PTY <path>" on stdout; `kwstool device-test --port
 * <path>` then talks to it exactly as to a board.
 *
 * The model is the one thing it does not run itself: each inference's int8 input window goes
 * out on --model-out (a pipe) and the int8 outputs come back on --model-in, from the real
 * TFLite Micro interpreter of the tflite-micro Python package (tests/firmware/host_board.py).
 * Without the pipes every inference fails (the session answers ERROR), which is enough for
 * feature and protocol tests.
 *
 * Usage: host_board --labels a,b,c [--input-scale F] [--input-zero-point N] [--output-scale F]
 *   [--output-zero-point N] [--window-ms N] [--threshold N | --thresholds a,b,c]
 *   [--suppression-ms N] [--min-coverage-ms N] [--model-name S] [--model-bytes N]
 *   [--model-in FD --model-out FD]
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "kws_pipeline.h"
#include "kws_protocol.h"
#include "kws_recognizer.h"
#include "kws_session.h"

#define MAX_LABEL_TEXT 1024

static volatile sig_atomic_t g_stop = 0;
static int g_master = -1;
static int g_model_in = -1, g_model_out = -1;
static uint8_t g_num_labels = 0;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static uint32_t now_us(void *ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

static uint32_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static int write_all(int fd, const uint8_t *data, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return -1;
    }
    data += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, uint8_t *data, size_t n) {
  while (n > 0) {
    const ssize_t r = read(fd, data, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    data += r;
    n -= (size_t)r;
  }
  return 0;
}

static void serial_write(void *ctx, const uint8_t *data, size_t n) {
  (void)ctx;
  if (write_all(g_master, data, n) != 0) g_stop = 1;
}

/* The model over the pipes: 'M' + window out, num_labels int8 back. */
static int pipe_model(void *ctx, const int8_t *input, int8_t *output) {
  (void)ctx;
  if (g_model_in < 0 || g_model_out < 0) return -1;
  uint8_t tag = 'M';
  if (write_all(g_model_out, &tag, 1) != 0 ||
      write_all(g_model_out, (const uint8_t *)input, KWS_FP_WINDOW_VALUES) != 0 ||
      read_all(g_model_in, (uint8_t *)output, g_num_labels) != 0) {
    return -1;
  }
  return 0;
}

static void usage(const char *why) {
  fprintf(stderr, "host_board: %s\n", why);
  exit(2);
}

int main(int argc, char **argv) {
  static char label_text[MAX_LABEL_TEXT];
  static const char *labels[KWS_RECOGNIZER_MAX_LABELS];
  static char info[KWS_PROTO_MAX_PAYLOAD];
  static kws_pipeline pipeline;
  static kws_session session;
  kws_pipeline_config pc;
  memset(&pc, 0, sizeof(pc));
  pc.input_scale = 1.0f;
  pc.output_scale = 1.0f / 256.0f;
  pc.output_zero_point = -128;
  pc.recognizer.average_window_ms = 1000;
  kws_recognizer_set_threshold(&pc.recognizer, 200);
  pc.recognizer.suppression_ms = 1500;
  pc.recognizer.minimum_coverage_ms = 200;
  const char *threshold_list = NULL;
  const char *model_name = "host";
  unsigned long model_bytes = 0;

  for (int i = 1; i < argc; ++i) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage("every option takes a value");
    const char *v = argv[++i];
    if (strcmp(a, "--labels") == 0) {
      snprintf(label_text, sizeof(label_text), "%s", v);
    } else if (strcmp(a, "--input-scale") == 0) {
      pc.input_scale = strtof(v, NULL);
    } else if (strcmp(a, "--input-zero-point") == 0) {
      pc.input_zero_point = (int32_t)strtol(v, NULL, 10);
    } else if (strcmp(a, "--output-scale") == 0) {
      pc.output_scale = strtof(v, NULL);
    } else if (strcmp(a, "--output-zero-point") == 0) {
      pc.output_zero_point = (int32_t)strtol(v, NULL, 10);
    } else if (strcmp(a, "--window-ms") == 0) {
      pc.recognizer.average_window_ms = (uint32_t)strtoul(v, NULL, 10);
    } else if (strcmp(a, "--threshold") == 0) {
      kws_recognizer_set_threshold(&pc.recognizer, (uint8_t)strtoul(v, NULL, 10));
    } else if (strcmp(a, "--thresholds") == 0) {
      threshold_list = v;
    } else if (strcmp(a, "--suppression-ms") == 0) {
      pc.recognizer.suppression_ms = (uint32_t)strtoul(v, NULL, 10);
    } else if (strcmp(a, "--min-coverage-ms") == 0) {
      pc.recognizer.minimum_coverage_ms = (uint32_t)strtoul(v, NULL, 10);
    } else if (strcmp(a, "--model-name") == 0) {
      model_name = v;
    } else if (strcmp(a, "--model-bytes") == 0) {
      model_bytes = strtoul(v, NULL, 10);
    } else if (strcmp(a, "--model-in") == 0) {
      g_model_in = (int)strtol(v, NULL, 10);
    } else if (strcmp(a, "--model-out") == 0) {
      g_model_out = (int)strtol(v, NULL, 10);
    } else {
      usage("unknown option");
    }
  }
  char label_list[600];
  if ((size_t)snprintf(label_list, sizeof(label_list), "%s", label_text) >= sizeof(label_list)) {
    usage("--labels is too long");
  }
  for (char *tok = strtok(label_text, ","); tok != NULL; tok = strtok(NULL, ",")) {
    if (g_num_labels == KWS_RECOGNIZER_MAX_LABELS) usage("too many labels");
    labels[g_num_labels++] = tok;
  }
  if (g_num_labels == 0) usage("--labels is required");
  if (threshold_list != NULL) { /* one per label */
    uint8_t k = 0;
    for (const char *c = threshold_list; *c && k < g_num_labels; ++k) {
      char *end = NULL;
      pc.recognizer.thresholds[k] = (uint8_t)strtoul(c, &end, 10);
      c = *end == ',' ? end + 1 : end;
    }
    if (k != g_num_labels) usage("--thresholds needs one value per label");
  }
  char thresholds[4 * KWS_RECOGNIZER_MAX_LABELS + 1];
  size_t tn = 0;
  for (uint8_t k = 0; k < g_num_labels; ++k) {
    tn += (size_t)snprintf(thresholds + tn, sizeof(thresholds) - tn, "%s%u", k ? "," : "",
                           pc.recognizer.thresholds[k]);
  }
  pc.invoke = pipe_model;
  pc.micros = now_us;
  pc.num_labels = g_num_labels;
  pc.recognizer.num_labels = g_num_labels;
  pc.recognizer.ignore_mask = kws_recognizer_ignore_mask(labels, g_num_labels);
  if (kws_pipeline_init(&pipeline, &pc) != 0) usage("invalid model or recognizer settings");

  snprintf(info, sizeof(info),
           "proto=%d\nboard=host\nmodel=%.64s\nmodel_ok=%d\nmodel_bytes=%lu\narena_bytes=0\n"
           "arena_used=0\nlabels=%.400s\nframes=%d\nchannels=%d\nsample_rate=%d\nstride_ms=%d\n"
           "average_window_ms=%lu\nthresholds=%s\nsuppression_ms=%lu\nminimum_coverage_ms=%lu\n"
           "max_audio_samples=%d\n",
           KWS_PROTO_VERSION, model_name, g_model_in >= 0 && g_model_out >= 0, model_bytes,
           label_list, KWS_FRONTEND_CLIP_FRAMES, KWS_FRONTEND_NUM_CHANNELS,
           KWS_FRONTEND_SAMPLE_RATE, KWS_FRONTEND_STRIDE_MS,
           (unsigned long)pc.recognizer.average_window_ms, thresholds,
           (unsigned long)pc.recognizer.suppression_ms,
           (unsigned long)pc.recognizer.minimum_coverage_ms, KWS_PROTO_MAX_PAYLOAD / 2);

  /* the pseudo-terminal: we keep the slave open too, so the master never sees a hang-up
   * between clients, and make it raw (no echo, no line discipline) */
  g_master = posix_openpt(O_RDWR | O_NOCTTY);
  if (g_master < 0 || grantpt(g_master) != 0 || unlockpt(g_master) != 0) {
    perror("host_board: pty");
    return 1;
  }
  const char *slave_name = ptsname(g_master);
  const int slave = slave_name ? open(slave_name, O_RDWR | O_NOCTTY) : -1;
  struct termios tio;
  if (slave < 0 || tcgetattr(slave, &tio) != 0) {
    perror("host_board: pty slave");
    return 1;
  }
  cfmakeraw(&tio);
  tcsetattr(slave, TCSANOW, &tio);

  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);

  kws_session_config sc;
  memset(&sc, 0, sizeof(sc));
  sc.pipeline = &pipeline;
  sc.write = serial_write;
  sc.info = info;
  sc.labels = labels;
  sc.idle_timeout_ms = 0; /* the test harness decides */
  kws_session_init(&session, &sc);

  printf("PTY %s\n", slave_name);
  fflush(stdout);

  uint8_t buf[4096];
  while (!g_stop) {
    struct pollfd pfd = {g_master, POLLIN, 0};
    const int ready = poll(&pfd, 1, 10);
    const uint32_t t = now_ms();
    if (ready > 0 && (pfd.revents & POLLIN)) {
      const ssize_t r = read(g_master, buf, sizeof(buf));
      if (r > 0) kws_session_receive(&session, buf, (size_t)r, t);
    }
    kws_session_poll(&session, t);
  }
  close(slave);
  close(g_master);
  return 0;
}
