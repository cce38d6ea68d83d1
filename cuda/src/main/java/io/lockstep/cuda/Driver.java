package io.lockstep.cuda;

import com.sun.jna.Pointer;

/**
 * The CUDA driver API's calls that the engine makes ({@code libcuda.so.1}), bound directly by
 * {@link CudaLibraries#load()}. Handles and device addresses are passed as {@code long}.
 */
final class Driver {
  static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
  static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
  static final int CU_STREAM_NON_BLOCKING = 1;

  private Driver() {}

  static native int cuInit(int flags);

  static native int cuDriverGetVersion(int[] version);

  static native int cuDeviceGetCount(int[] count);

  static native int cuDeviceGet(int[] device, int ordinal);

  static native int cuDeviceGetName(byte[] name, int length, int device);

  static native int cuDeviceGetAttribute(int[] value, int attribute, int device);

  static native int cuDevicePrimaryCtxRetain(long[] context, int device);

  static native int cuCtxSetCurrent(long context);

  static native int cuMemAlloc_v2(long[] address, long bytes);

  static native int cuMemFree_v2(long address);

  static native int cuMemAllocHost_v2(long[] address, long bytes);

  static native int cuMemFreeHost(long address);

  static native int cuMemcpyHtoDAsync_v2(long device, long host, long bytes, long stream);

  static native int cuMemcpyDtoHAsync_v2(long host, long device, long bytes, long stream);

  static native int cuMemsetD32Async(long address, int value, long count, long stream);

  static native int cuStreamCreate(long[] stream, int flags);

  static native int cuStreamDestroy_v2(long stream);

  static native int cuStreamSynchronize(long stream);

  static native int cuModuleLoadData(long[] module, Pointer image);

  static native int cuModuleGetFunction(long[] function, long module, String name);

  static native int cuLaunchKernel(
      long function,
      int gridX,
      int gridY,
      int gridZ,
      int blockX,
      int blockY,
      int blockZ,
      int sharedBytes,
      long stream,
      Pointer parameters,
      Pointer extra);

  static native int cuGetErrorName(int result, long[] name);

  /**
   * @param result a driver call's result
   * @param call what was called, for the message
   * @throws CudaException when the result is not CUDA_SUCCESS
   */
  static void check(int result, String call) {
    if (result != 0) {
      final long[] name = new long[1];
      final String text =
          cuGetErrorName(result, name) == 0 && name[0] != 0
              ? new Pointer(name[0]).getString(0)
              : "CUresult " + result;
      throw new CudaException(call + " failed: " + text);
    }
  }
}
