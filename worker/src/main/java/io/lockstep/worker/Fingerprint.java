package io.lockstep.worker;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;
import java.util.zip.CRC32C;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Checksums over float32 values as little-endian bytes, read from Java arrays or in place from
 * ND4J's native memory (little-endian on every platform ND4J's native backend ships for), so a
 * snapshot and a live replica checksum alike without copying either: CRC-32 alone for the
 * parameters' checksum runs report, and CRC-32 and CRC-32C together, 64 bits, for a state's
 * fingerprint.
 */
final class Fingerprint {
  private static final int CHUNK_FLOATS = 16 * 1024;
  private static final int NATIVE_CHUNK_BYTES = 1 << 30;

  private final CRC32 crc = new CRC32();
  private final CRC32C crc32c = new CRC32C();
  private ByteBuffer chunk;

  /** Adds float values, as their little-endian bytes. */
  void add(float[] values) {
    if (chunk == null) {
      chunk = ByteBuffer.allocate(CHUNK_FLOATS * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    }
    for (int from = 0; from < values.length; from += CHUNK_FLOATS) {
      final int count = Math.min(CHUNK_FLOATS, values.length - from);
      chunk.clear();
      chunk.asFloatBuffer().put(values, from, count);
      chunk.limit(count * Float.BYTES);
      update(chunk);
    }
  }

  /**
   * Adds a float32 array's elements in place, as their bytes in native memory.
   *
   * @throws IllegalArgumentException when {@code array} is not a contiguous float32 array
   */
  void add(INDArray array) {
    if (array == null) {
      return;
    }
    if (array.dataType() != DataType.FLOAT
        || array.ordering() != 'c'
        || array.length() > 0 && array.elementWiseStride() != 1) {
      throw new IllegalArgumentException(
          "a checksum reads contiguous row-major float32 arrays, not "
              + array.dataType()
              + " in order "
              + array.ordering());
    }
    final long address = Replica.nativeAddress(array);
    final long bytes = array.length() * Float.BYTES;
    for (long from = 0; from < bytes; from += NATIVE_CHUNK_BYTES) {
      final long count = Math.min(NATIVE_CHUNK_BYTES, bytes - from);
      update(new BytePointer(new Address(address + from)).capacity(count).asByteBuffer());
    }
  }

  /**
   * Adds the counters and the configuration.
   *
   * @return CRC-32 and CRC-32C of everything added, in the high and low 32 bits
   */
  long finish(long iteration, long epoch, String configurationJson) {
    final ByteBuffer counters = ByteBuffer.allocate(2 * Long.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    counters.putLong(iteration).putLong(epoch).flip();
    update(counters);
    update(ByteBuffer.wrap(configurationJson.getBytes(StandardCharsets.UTF_8)));
    return crc.getValue() << 32 | crc32c.getValue();
  }

  /** The CRC-32 of what was added so far. */
  long value() {
    return crc.getValue();
  }

  private void update(ByteBuffer bytes) {
    final int start = bytes.position();
    crc.update(bytes);
    bytes.position(start);
    crc32c.update(bytes);
  }

  /** A raw address as a JavaCPP pointer, owning nothing. */
  private static final class Address extends Pointer {
    Address(long address) {
      this.address = address;
    }
  }
}
