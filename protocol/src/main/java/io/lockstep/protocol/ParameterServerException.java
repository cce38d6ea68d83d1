package io.lockstep.protocol;

/**
 * A synchronization failure: a worker missed a step's deadline, the server aborted, or a stream
 * closed. The message names the step, the ranks and the setting to change.
 */
public final class ParameterServerException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final boolean permanent;

  /**
   * Creates the exception.
   *
   * @param message what failed, where, and the fix
   */
  public ParameterServerException(String message) {
    this(message, false);
  }

  /**
   * Creates the exception.
   *
   * @param message what failed, where, and the fix
   * @param permanent whether a worker reported a failure that running the stage again would meet
   *     again: its data or its configuration is wrong
   */
  public ParameterServerException(String message, boolean permanent) {
    super(message);
    this.permanent = permanent;
  }

  /**
   * @return whether running the stage again would fail the same way
   */
  public boolean permanent() {
    return permanent;
  }
}
