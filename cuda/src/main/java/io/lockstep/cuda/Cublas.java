package io.lockstep.cuda;

import com.sun.jna.Pointer;

/** The cuBLAS calls that the engine makes, bound directly by {@link CudaLibraries#load()}. */
final class Cublas {
  static final int OP_N = 0;
  static final int OP_T = 1;

  /** fp32 products without TF32, as PyTorch computes them with {@code allow_tf32} off. */
  static final int DEFAULT_MATH = 0;

  private Cublas() {}

  static native int cublasCreate_v2(long[] handle);

  static native int cublasDestroy_v2(long handle);

  static native int cublasSetStream_v2(long handle, long stream);

  static native int cublasSetMathMode(long handle, int mode);

  static native int cublasSetWorkspace_v2(long handle, long workspace, long bytes);

  static native int cublasSgemm_v2(
      long handle,
      int transa,
      int transb,
      int m,
      int n,
      int k,
      Pointer alpha,
      long a,
      int lda,
      long b,
      int ldb,
      Pointer beta,
      long c,
      int ldc);

  static void check(int status, String call) {
    if (status != 0) {
      throw new CudaException(call + " failed: cublasStatus_t " + status);
    }
  }
}
