package io.lockstep.worker.input;

import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Frees ND4J arrays when their owner is done with them, instead of when the garbage collector finds
 * them. An array's native buffer is freed only after a collection notices the Java object is gone;
 * an array that lived through a few young collections waits for the old generation's, so a loop
 * that makes arrays and leaves them to the collector holds a growing pile of freed-to-be memory,
 * spread over the allocator's per-thread arenas, long after it needed it.
 */
public final class NativeMemory {
  private NativeMemory() {}

  /**
   * Frees each array's buffer now. Views and arrays that live in a workspace are left alone: the
   * array they view, or the workspace, owns the memory.
   *
   * @param arrays arrays nothing will read again; nulls are skipped
   */
  public static void release(INDArray... arrays) {
    for (INDArray array : arrays) {
      if (array != null && !array.wasClosed() && array.closeable()) {
        array.close();
      }
    }
  }

  /**
   * Copies {@code values} over a float32 array's elements in one native copy, reusing its memory.
   *
   * @param target a contiguous float32 array (a row-major array, or a contiguous range of one)
   * @param values exactly as many values as {@code target} has elements
   * @throws IllegalArgumentException when the counts or the type differ or {@code target} is not
   *     contiguous
   */
  public static void write(INDArray target, float[] values) {
    pointer(target, values).put(values, 0, values.length);
  }

  /**
   * Copies a float32 array's elements into {@code values} in one native copy.
   *
   * @param source a contiguous float32 array (a row-major array, or a contiguous range of one)
   * @param values exactly as many places as {@code source} has elements
   * @throws IllegalArgumentException when the counts or the type differ or {@code source} is not
   *     contiguous
   */
  public static void read(INDArray source, float[] values) {
    pointer(source, values).get(values, 0, values.length);
  }

  private static FloatPointer pointer(INDArray target, float[] values) {
    if (target.dataType() != DataType.FLOAT
        || target.length() != values.length
        || target.ordering() != 'c'
        || target.elementWiseStride() != 1) {
      throw new IllegalArgumentException(
          "cannot copy "
              + values.length
              + " floats to or from "
              + target.dataType()
              + " "
              + java.util.Arrays.toString(target.shape())
              + " in order "
              + target.ordering()
              + "; it takes a contiguous row-major float32 array of as many elements");
    }
    return new FloatPointer(new Address(target.data().address() + target.offset() * Float.BYTES));
  }

  /** A raw address as a JavaCPP pointer, owning nothing. */
  private static final class Address extends Pointer {
    Address(long address) {
      this.address = address;
    }
  }
}
