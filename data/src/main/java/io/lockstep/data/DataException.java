package io.lockstep.data;

/** A dataset that is missing, unreadable or malformed; the message names the file and the fix. */
public final class DataException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /**
   * Creates the exception.
   *
   * @param message what is wrong with which file, and what to do
   */
  public DataException(String message) {
    super(message);
  }

  /**
   * Creates the exception with its cause.
   *
   * @param message what is wrong with which file, and what to do
   * @param cause the I/O error behind it
   */
  public DataException(String message, Throwable cause) {
    super(message, cause);
  }
}
