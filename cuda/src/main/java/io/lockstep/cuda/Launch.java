package io.lockstep.cuda;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;

/**
 * One kernel launch with its arguments laid out once: a plan's device addresses do not change, so a
 * step replays its launches without building anything.
 */
final class Launch {
  private static final int SLOT = 8;

  private final String name;
  private final long function;
  private final int grid;
  private final int block;
  private final Memory values;
  private final Memory pointers;

  /**
   * @param kernels the device's kernels
   * @param name the kernel
   * @param threads how many threads to start, in blocks of {@link Kernels#BLOCK}
   * @param arguments each an {@link Integer}, {@link Long} or {@link Float}, in the kernel's order
   */
  static Launch elementwise(Kernels kernels, String name, long threads, Object... arguments) {
    final long blocks = (threads + Kernels.BLOCK - 1) / Kernels.BLOCK;
    if (blocks > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(
          name + ": " + threads + " threads are too many for one grid");
    }
    return new Launch(kernels, name, (int) Math.max(1, blocks), Kernels.BLOCK, arguments);
  }

  Launch(Kernels kernels, String name, int grid, int block, Object... arguments) {
    this.name = name;
    this.function = kernels.function(name);
    this.grid = grid;
    this.block = block;
    this.values = new Memory((long) SLOT * Math.max(1, arguments.length));
    this.pointers = new Memory((long) Native.POINTER_SIZE * Math.max(1, arguments.length));
    for (int i = 0; i < arguments.length; i++) {
      set(i, arguments[i]);
      pointers.setPointer((long) Native.POINTER_SIZE * i, values.share((long) SLOT * i));
    }
  }

  /** Replaces one argument, for launches whose scalars change (a learning rate). */
  void set(int index, Object value) {
    final long offset = (long) SLOT * index;
    if (value instanceof Integer v) {
      values.setInt(offset, v);
    } else if (value instanceof Long v) {
      values.setLong(offset, v);
    } else if (value instanceof Float v) {
      values.setFloat(offset, v);
    } else {
      throw new IllegalArgumentException(name + ": argument " + index + " is a " + value);
    }
  }

  void run(long stream) {
    final int result =
        Driver.cuLaunchKernel(function, grid, 1, 1, block, 1, 1, 0, stream, pointers, Pointer.NULL);
    if (result != 0) {
      Driver.check(result, "cuLaunchKernel(" + name + ")");
    }
  }
}
