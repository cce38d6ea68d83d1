package io.lockstep.worker.input;

/** {@code (x / 255 - mean) / std} per channel, as one multiply-add per pixel. */
final class ChannelNormalization {
  private final float[] scale;
  private final float[] shift;

  /**
   * @param mean per-channel mean of pixels scaled to [0, 1]
   * @param std per-channel standard deviation
   */
  ChannelNormalization(double[] mean, double[] std) {
    scale = new float[mean.length];
    shift = new float[mean.length];
    for (int c = 0; c < scale.length; c++) {
      scale[c] = (float) (1.0 / (255.0 * std[c]));
      shift[c] = (float) (-mean[c] / std[c]);
    }
  }

  /**
   * Normalizes one channels-first image.
   *
   * @param pixels the image's bytes, {@code channels x plane}, from {@code from}
   * @param from the image's first byte
   * @param plane pixels per channel
   * @param to where the image's values go
   * @param at the first value's index in {@code to}
   */
  void apply(byte[] pixels, int from, int plane, float[] to, int at) {
    for (int c = 0; c < scale.length; c++) {
      final float a = scale[c];
      final float b = shift[c];
      for (int p = c * plane; p < (c + 1) * plane; p++) {
        to[at + p] = (pixels[from + p] & 0xff) * a + b;
      }
    }
  }
}
