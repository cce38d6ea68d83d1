package io.lockstep.protocol;

import java.nio.ByteOrder;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;
import org.agrona.UnsafeApi;

/**
 * The encodings of a chunk's payload, named by the frame's encoding byte. A chunk stands for {@code
 * count} consecutive floats of the flat vector, at most 65,536 (a chunk is one Aeron frame, so at
 * most 16,356 floats):
 *
 * <ul>
 *   <li>{@link #F32}: {@code count} little-endian floats.
 *   <li>{@link #F16}: a float32 scale, a power of two, then {@code count} IEEE half-precision
 *       values; value {@code i} is {@code half[i] * scale}. The scale puts the chunk's largest
 *       magnitude in {@code [2^14, 2^15)}, so no value overflows half precision's 65,504 and the
 *       small ones keep 24 binary orders of magnitude below the largest.
 *   <li>{@link #BF16}: {@code count} bfloat16 values (a float32's upper half, rounded to nearest
 *       even).
 *   <li>{@link #SPARSE}: {@code m} entries, the others zero: {@code m} unsigned 16-bit offsets in
 *       increasing order, padded to a multiple of 4 bytes, then their {@code m} floats. {@code m}
 *       follows from the length: {@code 6m} bytes, or {@code 6m + 2} when {@code m} is odd.
 *   <li>{@link #SHARED}: no payload; the {@code count} floats lie at the chunk's place in the job's
 *       shared memory ({@link SharedGradients}): the sender's slot for a gradient, the sum's for an
 *       answer. Only frames between processes of one host carry it.
 * </ul>
 *
 * <p>A payload that is not a valid encoding of {@code count} floats is reported by {@link
 * #problem}, which every receiver calls first: the decoders then read without bounds checks (this
 * machine is little-endian, checked at start-up), and the encoders check their output's bounds
 * once.
 */
public final class ChunkCodec {
  public static final byte F32 = 0;
  public static final byte F16 = 1;
  public static final byte BF16 = 2;
  public static final byte SPARSE = 3;
  public static final byte SHARED = 4;

  /** The largest chunk a sparse offset can address. */
  public static final int MAX_COUNT = 1 << 16;

  private static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;

  /** Every half's float value: decoding is one lookup (256 KiB, cache-resident while in use). */
  private static final float[] HALF = new float[1 << 16];

  static {
    if (ByteOrder.nativeOrder() != ORDER) {
      throw new IllegalStateException("the chunk encodings need a little-endian machine");
    }
    for (int bits = 0; bits < HALF.length; bits++) {
      HALF[bits] = halfToFloat((short) bits);
    }
  }

  private ChunkCodec() {}

  /**
   * The most bytes an encoding of {@code count} floats takes, whichever encoding.
   *
   * @param count the chunk's floats
   * @return a staging buffer's size
   */
  public static int maxLength(int count) {
    return Math.max(count * Float.BYTES, Float.BYTES + count * 2);
  }

  /**
   * Returns null when {@code length} bytes at {@code payload} are a valid encoding of {@code count}
   * floats, else what is wrong.
   */
  public static String problem(
      byte encoding, DirectBuffer buffer, int payload, int length, int count) {
    switch (encoding) {
      case F32:
        return length == count * Float.BYTES ? null : "wrong length for " + count + " floats";
      case BF16:
        return length == count * 2 ? null : "wrong length for " + count + " bfloat16 values";
      case F16:
        if (length != Float.BYTES + count * 2) {
          return "wrong length for " + count + " half-precision values";
        }
        final float scale = buffer.getFloat(payload, ORDER);
        return scale > 0 && Float.isFinite(scale) ? null : "half-precision scale " + scale;
      case SPARSE:
        final int entries = sparseEntries(length);
        if (entries < 0 || entries > count) {
          return "sparse payload of " + length + " bytes for " + count + " floats";
        }
        int previous = -1;
        for (int i = 0; i < entries; i++) {
          final int at = buffer.getShort(payload + 2 * i, ORDER) & 0xFFFF;
          if (at <= previous || at >= count) {
            return "sparse offset " + at + " out of order or beyond " + count + " floats";
          }
          previous = at;
        }
        return null;
      default:
        return "unknown encoding " + encoding;
    }
  }

  /**
   * Returns null when the payload of the frame at {@code offset} (header checked) is a valid
   * encoding, named by its encoding byte, of {@code count} floats, else what is wrong.
   */
  public static String frameProblem(DirectBuffer frame, int offset, int count) {
    return problem(
        Frame.encoding(frame, offset),
        frame,
        offset + Frame.HEADER_LENGTH,
        Frame.payloadLength(frame, offset),
        count);
  }

  /** The entries of a sparse payload of {@code length} bytes, or -1 when no count fits. */
  public static int sparseEntries(int length) {
    final int entries = length / 6;
    return length >= 0 && length == sparseLength(entries) ? entries : -1;
  }

  private static int valuesOffset(int entries) {
    return (2 * entries + 3) & ~3;
  }

  /**
   * Adds a valid encoded payload into {@code sum[first, first + count)}.
   *
   * @param encoding the frame's encoding
   * @param buffer the frame's buffer
   * @param payload where the payload starts
   * @param length its bytes
   * @param sum the sum so far
   * @param first the index of the chunk's first float in {@code sum}
   * @param count the chunk's floats
   */
  public static void add(
      byte encoding,
      DirectBuffer buffer,
      int payload,
      int length,
      float[] sum,
      int first,
      int count) {
    final byte[] array = buffer.byteArray();
    final long at = buffer.addressOffset() + payload;
    switch (encoding) {
      case F32 -> {
        for (int i = 0; i < count; i++) {
          sum[first + i] += UnsafeApi.getFloat(array, at + (long) Float.BYTES * i);
        }
      }
      case F16 -> {
        final float scale = UnsafeApi.getFloat(array, at);
        final long halves = at + Float.BYTES;
        for (int i = 0; i < count; i++) {
          sum[first + i] += HALF[UnsafeApi.getShort(array, halves + 2L * i) & 0xFFFF] * scale;
        }
      }
      case BF16 -> {
        for (int i = 0; i < count; i++) {
          sum[first + i] += Float.intBitsToFloat(UnsafeApi.getShort(array, at + 2L * i) << 16);
        }
      }
      case SPARSE -> {
        final int entries = sparseEntries(length);
        final long values = at + valuesOffset(entries);
        for (int i = 0; i < entries; i++) {
          sum[first + (UnsafeApi.getShort(array, at + 2L * i) & 0xFFFF)] +=
              UnsafeApi.getFloat(array, values + (long) Float.BYTES * i);
        }
      }
      default -> throw new IllegalArgumentException("unknown encoding " + encoding);
    }
  }

  /**
   * Writes a valid encoded payload as {@code count} little-endian floats at {@code targetByte}.
   *
   * @param encoding the frame's encoding
   * @param buffer the frame's buffer
   * @param payload where the payload starts
   * @param length its bytes
   * @param target where the floats go
   * @param targetByte the first float's byte
   * @param count the chunk's floats
   */
  public static void decode(
      byte encoding,
      DirectBuffer buffer,
      int payload,
      int length,
      MutableDirectBuffer target,
      int targetByte,
      int count) {
    target.boundsCheck(targetByte, count * Float.BYTES);
    switch (encoding) {
      case F32 -> target.putBytes(targetByte, buffer, payload, count * Float.BYTES);
      case F16 -> {
        final byte[] from = buffer.byteArray();
        final long halves = buffer.addressOffset() + payload + Float.BYTES;
        final byte[] to = target.byteArray();
        final long at = target.addressOffset() + targetByte;
        final float scale = buffer.getFloat(payload, ORDER);
        for (int i = 0; i < count; i++) {
          UnsafeApi.putFloat(
              to,
              at + (long) Float.BYTES * i,
              HALF[UnsafeApi.getShort(from, halves + 2L * i) & 0xFFFF] * scale);
        }
      }
      case BF16 -> {
        final byte[] from = buffer.byteArray();
        final long halves = buffer.addressOffset() + payload;
        final byte[] to = target.byteArray();
        final long at = target.addressOffset() + targetByte;
        for (int i = 0; i < count; i++) {
          UnsafeApi.putInt(
              to, at + (long) Float.BYTES * i, UnsafeApi.getShort(from, halves + 2L * i) << 16);
        }
      }
      case SPARSE -> {
        target.setMemory(targetByte, count * Float.BYTES, (byte) 0);
        final int entries = sparseEntries(length);
        final int values = payload + valuesOffset(entries);
        for (int i = 0; i < entries; i++) {
          target.putFloat(
              targetByte + Float.BYTES * (buffer.getShort(payload + 2 * i, ORDER) & 0xFFFF),
              buffer.getFloat(values + Float.BYTES * i, ORDER),
              ORDER);
        }
      }
      default -> throw new IllegalArgumentException("unknown encoding " + encoding);
    }
  }

  /**
   * Encodes {@code values[0, count)} in half precision with a power-of-two scale.
   *
   * @return the payload's length
   */
  public static int encodeF16(float[] values, int count, MutableDirectBuffer out, int offset) {
    float largest = 0;
    for (int i = 0; i < count; i++) {
      largest = Math.max(largest, Math.abs(values[i]));
    }
    // The largest magnitude lands in [2^14, 2^15): exact power-of-two scaling both ways.
    final int exponent =
        largest > 0 && Float.isFinite(largest)
            ? Math.max(Math.getExponent(largest) - 14, Float.MIN_EXPONENT - 10)
            : 0;
    final float scale = Math.scalb(1f, exponent);
    final float inverse = Math.scalb(1f, -exponent);
    final int length = Float.BYTES + 2 * count;
    out.boundsCheck(offset, length);
    out.putFloat(offset, scale, ORDER);
    final byte[] to = out.byteArray();
    final long at = out.addressOffset() + offset + Float.BYTES;
    if (Float.isFinite(inverse)) {
      for (int i = 0; i < count; i++) {
        UnsafeApi.putShort(to, at + 2L * i, floatToHalf(values[i] * inverse));
      }
    } else {
      for (int i = 0; i < count; i++) {
        UnsafeApi.putShort(to, at + 2L * i, floatToHalf(Math.scalb(values[i], -exponent)));
      }
    }
    return length;
  }

  /**
   * Encodes {@code values[0, count)} as bfloat16, rounded to nearest even.
   *
   * @return the payload's length
   */
  public static int encodeBf16(float[] values, int count, MutableDirectBuffer out, int offset) {
    out.boundsCheck(offset, 2 * count);
    final byte[] to = out.byteArray();
    final long at = out.addressOffset() + offset;
    for (int i = 0; i < count; i++) {
      UnsafeApi.putShort(to, at + 2L * i, floatToBfloat16(values[i]));
    }
    return 2 * count;
  }

  /**
   * Encodes the non-zero values of {@code values[0, count)} as sparse entries, when that is shorter
   * than float32.
   *
   * @return the payload's length, or -1 when float32 is no longer
   */
  public static int encodeSparse(float[] values, int count, MutableDirectBuffer out, int offset) {
    int entries = 0;
    for (int i = 0; i < count; i++) {
      if (values[i] != 0) {
        entries++;
      }
    }
    final int length = sparseLength(entries);
    if (length >= count * Float.BYTES) {
      return -1;
    }
    final int valuesAt = offset + valuesOffset(entries);
    int entry = 0;
    for (int i = 0; i < count; i++) {
      if (values[i] != 0) {
        out.putShort(offset + 2 * entry, (short) i, ORDER);
        out.putFloat(valuesAt + Float.BYTES * entry, values[i], ORDER);
        entry++;
      }
    }
    if (entries % 2 == 1) {
      out.putShort(offset + 2 * entries, (short) 0, ORDER);
    }
    return length;
  }

  /** The bytes of a sparse payload of {@code entries}. */
  public static int sparseLength(int entries) {
    return valuesOffset(entries) + Float.BYTES * entries;
  }

  /** Rounds a float to the nearest IEEE half, ties to even; overflow gives infinity. */
  public static short floatToHalf(float value) {
    final int bits = Float.floatToRawIntBits(value);
    final int sign = (bits >>> 16) & 0x8000;
    final int magnitude = bits & 0x7FFFFFFF;
    if (magnitude >= 0x7F800000) {
      // Infinity stays infinite; NaN stays NaN.
      return (short) (sign | 0x7C00 | (magnitude > 0x7F800000 ? 0x200 : 0));
    }
    if (magnitude >= 0x477FF000) {
      // At or above 65520, which rounds past the largest half (65504).
      return (short) (sign | 0x7C00);
    }
    if (magnitude < 0x38800000) {
      // Below half's smallest normal 2^-14: a subnormal multiple of 2^-24, or zero.
      if (magnitude < 0x33000000) {
        return (short) sign;
      }
      final int exponent = magnitude >>> 23;
      final int mantissa = (magnitude & 0x7FFFFF) | 0x800000;
      final int shift = 126 - exponent;
      final int half = mantissa >>> shift;
      final int rest = mantissa & ((1 << shift) - 1);
      final int midpoint = 1 << (shift - 1);
      final int rounded =
          rest > midpoint || (rest == midpoint && (half & 1) == 1) ? half + 1 : half;
      return (short) (sign | rounded);
    }
    final int rebased = magnitude - ((127 - 15) << 23);
    final int half = rebased >>> 13;
    final int rest = rebased & 0x1FFF;
    final int rounded = rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1) ? half + 1 : half;
    return (short) (sign | rounded);
  }

  /** The float value of an IEEE half. */
  public static float halfToFloat(short half) {
    final int bits = half & 0xFFFF;
    final int sign = (bits & 0x8000) << 16;
    final int exponent = (bits >>> 10) & 0x1F;
    final int mantissa = bits & 0x3FF;
    if (exponent == 0x1F) {
      return Float.intBitsToFloat(sign | 0x7F800000 | (mantissa << 13));
    }
    if (exponent == 0) {
      final float value = mantissa * 0x1p-24f;
      return sign == 0 ? value : -value;
    }
    return Float.intBitsToFloat(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
  }

  /** Rounds a float to bfloat16, ties to even; NaN stays NaN. */
  public static short floatToBfloat16(float value) {
    final int bits = Float.floatToRawIntBits(value);
    if ((bits & 0x7FFFFFFF) > 0x7F800000) {
      return (short) ((bits >>> 16) | 0x40);
    }
    return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
  }
}
