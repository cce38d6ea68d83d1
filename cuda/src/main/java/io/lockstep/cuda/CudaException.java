package io.lockstep.cuda;

/** A CUDA, cuBLAS, cuDNN or NVRTC call that failed, or CUDA that could not be found. */
public final class CudaException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /**
   * @param message one line naming the call or the library, and what to do
   */
  public CudaException(String message) {
    super(message);
  }
}
