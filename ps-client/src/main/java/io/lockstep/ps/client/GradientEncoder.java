package io.lockstep.ps.client;

import io.lockstep.conf.Compression;
import io.lockstep.protocol.ChunkCodec;
import io.lockstep.protocol.ChunkLayout;
import java.util.Arrays;
import org.agrona.BufferUtil;
import org.agrona.DirectBuffer;
import org.agrona.UnsafeApi;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * Encodes a worker's chunks for one shard as the job's {@link Compression} asks. The sparse
 * encodings keep error feedback: what a step does not send stays in a residual, one float per
 * parameter of the shard, and is added to the same elements of the next step's gradient, so every
 * contribution is sent eventually (Seide et al. 2014; Lin et al. 2018).
 *
 * <p>Top-k picks the {@code ceil(ratio x count)} largest magnitudes of each chunk (ties in index
 * order); threshold picks every element whose magnitude reaches {@code threshold x samples}, the
 * worker's samples of the step, since the gradient it sends is a sum over them. A sparse chunk that
 * would be no shorter than float32 goes as float32.
 *
 * <p>Not thread-safe: one worker's training thread owns it.
 */
public final class GradientEncoder {
  private static final long FLOAT_ARRAY_BASE = UnsafeApi.arrayBaseOffset(float[].class);

  private final Compression compression;
  private final double topKRatio;
  private final double threshold;
  private final ChunkLayout layout;
  private final float[] values;
  private final float[] magnitudes;
  private final float[] residual;
  private final UnsafeBuffer out;
  private byte encoding;

  public GradientEncoder(
      Compression compression, double topKRatio, double threshold, ChunkLayout layout) {
    if (compression == Compression.NONE) {
      throw new IllegalArgumentException("float32 chunks are sent as they are, not encoded");
    }
    if (!(topKRatio > 0 && topKRatio <= 1) || !(threshold > 0)) {
      throw new IllegalArgumentException(
          "top-k ratio " + topKRatio + " must be in (0, 1] and threshold " + threshold + " > 0");
    }
    if (layout.chunkFloats() > ChunkCodec.MAX_COUNT) {
      throw new IllegalArgumentException(
          "chunks of " + layout.chunkFloats() + " floats; encoded chunks hold at most 65536");
    }
    this.compression = compression;
    this.topKRatio = topKRatio;
    this.threshold = threshold;
    this.layout = layout;
    final int chunkFloats = Math.min(layout.chunkFloats(), layout.parameterCount());
    this.values = new float[chunkFloats];
    final boolean sparse = compression == Compression.TOP_K || compression == Compression.THRESHOLD;
    this.magnitudes = compression == Compression.TOP_K ? new float[chunkFloats] : null;
    this.residual = sparse ? new float[layout.parameterCount()] : null;
    this.out =
        new UnsafeBuffer(BufferUtil.allocateDirectAligned(ChunkCodec.maxLength(chunkFloats), 64));
  }

  /**
   * Encodes chunk {@code chunk} of the gradient whose first float is at {@code firstByte}.
   *
   * @param gradient the worker's gradient
   * @param firstByte the byte of this shard's first float in it
   * @param chunk the chunk
   * @param samples the worker's samples behind the gradient
   * @return the payload's length in {@link #out()}; {@link #encoding()} says how it is encoded
   */
  public int encode(DirectBuffer gradient, int firstByte, int chunk, int samples) {
    final int bytes = layout.lengthBytes(chunk);
    final int count = bytes / Float.BYTES;
    UnsafeApi.copyMemory(
        gradient.byteArray(),
        gradient.addressOffset() + firstByte + layout.offsetBytes(chunk),
        values,
        FLOAT_ARRAY_BASE,
        bytes);
    switch (compression) {
      case FP16 -> {
        encoding = ChunkCodec.F16;
        return ChunkCodec.encodeF16(values, count, out, 0);
      }
      case BF16 -> {
        encoding = ChunkCodec.BF16;
        return ChunkCodec.encodeBf16(values, count, out, 0);
      }
      default -> {
        final int base = chunk * layout.chunkFloats();
        for (int i = 0; i < count; i++) {
          values[i] += residual[base + i];
        }
        if (compression == Compression.TOP_K) {
          keepLargest(count, base);
        } else {
          keepAbove((float) (threshold * Math.max(1, samples)), count, base);
        }
        final int length = ChunkCodec.encodeSparse(values, count, out, 0);
        if (length >= 0) {
          encoding = ChunkCodec.SPARSE;
          return length;
        }
        encoding = ChunkCodec.F32;
        UnsafeApi.copyMemory(values, FLOAT_ARRAY_BASE, null, out.addressOffset(), bytes);
        return bytes;
      }
    }
  }

  /** The encoded payload of the last {@link #encode}. */
  public UnsafeBuffer out() {
    return out;
  }

  /** The encoding of the last {@link #encode}. */
  public byte encoding() {
    return encoding;
  }

  /** Keeps the chunk's k largest magnitudes in {@link #values}; the rest go to the residual. */
  private void keepLargest(int count, int base) {
    final int k = Math.max(1, (int) Math.ceil(topKRatio * count));
    if (k >= count) {
      Arrays.fill(residual, base, base + count, 0f);
      return;
    }
    for (int i = 0; i < count; i++) {
      magnitudes[i] = magnitude(values[i]);
    }
    final float kth = select(magnitudes, count, count - k);
    int above = 0;
    for (int i = 0; i < count; i++) {
      if (magnitude(values[i]) > kth) {
        above++;
      }
    }
    int ties = k - above;
    for (int i = 0; i < count; i++) {
      final float m = magnitude(values[i]);
      final boolean send = m > kth || (m == kth && ties-- > 0);
      keep(send, i, base);
    }
  }

  /** Keeps the elements whose magnitude reaches {@code limit}; the rest go to the residual. */
  private void keepAbove(float limit, int count, int base) {
    for (int i = 0; i < count; i++) {
      keep(magnitude(values[i]) >= limit, i, base);
    }
  }

  private void keep(boolean send, int i, int base) {
    if (send) {
      residual[base + i] = 0;
    } else {
      residual[base + i] = values[i];
      values[i] = 0;
    }
  }

  /** |v|, with NaN as infinity: a broken gradient is sent, not hidden in the residual. */
  private static float magnitude(float v) {
    final float m = Math.abs(v);
    return m != m ? Float.POSITIVE_INFINITY : m;
  }

  /**
   * The {@code k}-th smallest of {@code a[0, n)}, counted from 0 (Hoare's selection; reorders
   * {@code a}). No NaNs.
   */
  static float select(float[] a, int n, int k) {
    int lo = 0;
    int hi = n - 1;
    while (lo < hi) {
      final float x = a[lo];
      final float y = a[(lo + hi) >>> 1];
      final float z = a[hi];
      final float pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z));
      int i = lo;
      int j = hi;
      while (i <= j) {
        while (a[i] < pivot) {
          i++;
        }
        while (a[j] > pivot) {
          j--;
        }
        if (i <= j) {
          final float t = a[i];
          a[i] = a[j];
          a[j] = t;
          i++;
          j--;
        }
      }
      if (k <= j) {
        hi = j;
      } else if (k >= i) {
        lo = i;
      } else {
        return a[k];
      }
    }
    return a[lo];
  }
}
