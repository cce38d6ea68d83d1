package io.lockstep.worker.engine;

/** The network has a layer or setting that {@link CompiledNetwork} does not compute. */
public final class UnsupportedNetworkException extends Exception {
  private static final long serialVersionUID = 1L;

  UnsupportedNetworkException(String message) {
    super(message);
  }
}
