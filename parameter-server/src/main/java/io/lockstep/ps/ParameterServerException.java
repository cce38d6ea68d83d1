package io.lockstep.ps;

/**
 * A synchronization failure: a worker missed a step's deadline, the server aborted, or a stream
 * closed. The message names the step, the ranks and the setting to change.
 */
public final class ParameterServerException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /**
   * Creates the exception.
   *
   * @param message what failed, where, and the fix
   */
  public ParameterServerException(String message) {
    super(message);
  }
}
