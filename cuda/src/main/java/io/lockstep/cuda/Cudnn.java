package io.lockstep.cuda;

import com.sun.jna.Pointer;
import java.util.Set;

/**
 * The cuDNN 9 calls that the engine makes (the convolution, batch-norm and descriptor API), bound
 * directly by {@link CudaLibraries#load()}. Descriptors and handles are passed as {@code long}.
 */
final class Cudnn {
  static final int DATA_FLOAT = 0;
  static final int TENSOR_NCHW = 0;
  static final int CROSS_CORRELATION = 1;

  /** fp32 arithmetic without TF32 tensor cores. */
  static final int FMA_MATH = 3;

  static final int BATCHNORM_SPATIAL = 1;
  static final int DETERMINISTIC = 1;

  /** Bytes of one cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t. */
  static final int PERF_BYTES = 48;

  static final int PERF_ALGO = 0;
  static final int PERF_STATUS = 4;
  static final int PERF_DETERMINISM = 24;

  /**
   * The exact algorithms: implicit and explicit GEMM and direct convolution forward, and the
   * deterministic ALGO_1 backward. The others are left out: FFT and Winograd transforms lose up to
   * 1e-2 of a gradient's fp32 precision (measured on an H200 against PyTorch's ResNet-18 CIFAR
   * gradients), and backward ALGO_0 and ALGO_3 add with atomics, in a different order each run.
   */
  static final Set<Integer> EXACT_FORWARD = Set.of(0, 1, 2, 3);

  static final Set<Integer> EXACT_BACKWARD_DATA = Set.of(1);
  static final Set<Integer> EXACT_BACKWARD_FILTER = Set.of(1);

  private Cudnn() {}

  static native long cudnnGetVersion();

  static native int cudnnCreate(long[] handle);

  static native int cudnnDestroy(long handle);

  static native int cudnnSetStream(long handle, long stream);

  static native String cudnnGetErrorString(int status);

  static native int cudnnCreateTensorDescriptor(long[] descriptor);

  static native int cudnnSetTensor4dDescriptor(
      long descriptor, int format, int dataType, int n, int c, int h, int w);

  static native int cudnnDestroyTensorDescriptor(long descriptor);

  static native int cudnnCreateFilterDescriptor(long[] descriptor);

  static native int cudnnDestroyFilterDescriptor(long descriptor);

  static native int cudnnDestroyConvolutionDescriptor(long descriptor);

  static native int cudnnSetFilter4dDescriptor(
      long descriptor, int dataType, int format, int k, int c, int h, int w);

  static native int cudnnCreateConvolutionDescriptor(long[] descriptor);

  static native int cudnnSetConvolution2dDescriptor(
      long descriptor,
      int padH,
      int padW,
      int strideH,
      int strideW,
      int dilationH,
      int dilationW,
      int mode,
      int computeType);

  static native int cudnnSetConvolutionMathType(long descriptor, int mathType);

  static native int cudnnGetConvolutionForwardAlgorithm_v7(
      long handle, long x, long w, long conv, long y, int requested, int[] returned, Pointer perf);

  static native int cudnnGetConvolutionBackwardDataAlgorithm_v7(
      long handle,
      long w,
      long dy,
      long conv,
      long dx,
      int requested,
      int[] returned,
      Pointer perf);

  static native int cudnnGetConvolutionBackwardFilterAlgorithm_v7(
      long handle,
      long x,
      long dy,
      long conv,
      long dw,
      int requested,
      int[] returned,
      Pointer perf);

  static native int cudnnGetConvolutionForwardWorkspaceSize(
      long handle, long x, long w, long conv, long y, int algorithm, long[] bytes);

  static native int cudnnGetConvolutionBackwardDataWorkspaceSize(
      long handle, long w, long dy, long conv, long dx, int algorithm, long[] bytes);

  static native int cudnnGetConvolutionBackwardFilterWorkspaceSize(
      long handle, long x, long dy, long conv, long dw, int algorithm, long[] bytes);

  static native int cudnnConvolutionForward(
      long handle,
      Pointer alpha,
      long xDescriptor,
      long x,
      long wDescriptor,
      long w,
      long conv,
      int algorithm,
      long workspace,
      long workspaceBytes,
      Pointer beta,
      long yDescriptor,
      long y);

  static native int cudnnConvolutionBackwardData(
      long handle,
      Pointer alpha,
      long wDescriptor,
      long w,
      long dyDescriptor,
      long dy,
      long conv,
      int algorithm,
      long workspace,
      long workspaceBytes,
      Pointer beta,
      long dxDescriptor,
      long dx);

  static native int cudnnConvolutionBackwardFilter(
      long handle,
      Pointer alpha,
      long xDescriptor,
      long x,
      long dyDescriptor,
      long dy,
      long conv,
      int algorithm,
      long workspace,
      long workspaceBytes,
      Pointer beta,
      long dwDescriptor,
      long dw);

  static native int cudnnBatchNormalizationForwardTraining(
      long handle,
      int mode,
      Pointer alpha,
      Pointer beta,
      long xDescriptor,
      long x,
      long yDescriptor,
      long y,
      long scaleDescriptor,
      long scale,
      long bias,
      double averageFactor,
      long runningMean,
      long runningVariance,
      double epsilon,
      long savedMean,
      long savedInverseVariance);

  static native int cudnnBatchNormalizationBackward(
      long handle,
      int mode,
      Pointer alphaData,
      Pointer betaData,
      Pointer alphaParameters,
      Pointer betaParameters,
      long xDescriptor,
      long x,
      long dyDescriptor,
      long dy,
      long dxDescriptor,
      long dx,
      long scaleDescriptor,
      long scale,
      long dScale,
      long dBias,
      double epsilon,
      long savedMean,
      long savedInverseVariance);

  static void check(int status, String call) {
    if (status != 0) {
      throw new CudaException(call + " failed: " + cudnnGetErrorString(status));
    }
  }
}
