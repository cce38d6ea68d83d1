package io.lockstep.cuda;

import com.sun.jna.Pointer;

/** The NVRTC calls that compile the engine's kernels, bound directly by {@link CudaLibraries}. */
final class Nvrtc {
  private Nvrtc() {}

  static native int nvrtcVersion(int[] major, int[] minor);

  static native int nvrtcCreateProgram(
      long[] program,
      String source,
      String name,
      int headerCount,
      Pointer headers,
      Pointer includeNames);

  static native int nvrtcCompileProgram(long program, int optionCount, Pointer options);

  static native int nvrtcGetProgramLogSize(long program, long[] size);

  static native int nvrtcGetProgramLog(long program, byte[] log);

  static native int nvrtcGetCUBINSize(long program, long[] size);

  static native int nvrtcGetCUBIN(long program, Pointer cubin);

  static native int nvrtcDestroyProgram(long[] program);

  static native String nvrtcGetErrorString(int result);

  static void check(int result, String call) {
    if (result != 0) {
      throw new CudaException(call + " failed: " + nvrtcGetErrorString(result));
    }
  }
}
