/* Constant tables of the kwstool feature front end (generated into kws_frontend_tables.c by
 * scripts/frontend_tables/gen_frontend_tables.c). They live in flash on the board. */
#ifndef KWS_FRONTEND_TABLES_H_
#define KWS_FRONTEND_TABLES_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KWS_FILTERBANK_WEIGHT_COUNT 236
#define KWS_PCAN_LUT_SIZE 125

extern const int16_t kws_window_q12[480];
extern const int16_t kws_fft_twiddle_re[256];
extern const int16_t kws_fft_twiddle_im[256];
extern const int16_t kws_fft_real_twiddle_re[128];
extern const int16_t kws_fft_real_twiddle_im[128];
extern const int16_t kws_filterbank_start_bin;
extern const int16_t kws_filterbank_end_bin;
extern const int16_t kws_filterbank_channel_start[41];
extern const int16_t kws_filterbank_channel_width[41];
extern const int16_t kws_filterbank_weight_q12[KWS_FILTERBANK_WEIGHT_COUNT];
extern const int16_t kws_filterbank_unweight_q12[KWS_FILTERBANK_WEIGHT_COUNT];
extern const int16_t kws_pcan_gain_lut[KWS_PCAN_LUT_SIZE];
extern const uint16_t kws_log_correction_q16[129];

#ifdef __cplusplus
}
#endif

#endif /* KWS_FRONTEND_TABLES_H_ */
