package io.lockstep.conf;

/** A configuration value, file or override that cannot be used; the message names the fix. */
public final class ConfigurationException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /**
   * Creates an exception with a one-line message that names the key, the value and the fix.
   *
   * @param message what is wrong and what to change
   */
  public ConfigurationException(String message) {
    super(message);
  }

  /**
   * Creates an exception with a one-line message and the error that showed the problem.
   *
   * @param message what is wrong and what to change
   * @param cause the error behind it, such as a file's I/O error
   */
  public ConfigurationException(String message, Throwable cause) {
    super(message, cause);
  }
}
