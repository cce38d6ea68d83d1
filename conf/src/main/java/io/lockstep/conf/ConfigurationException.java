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
}
