package io.lockstep.worker;

import java.io.Serializable;

/**
 * Everything that defines a replica between two epochs: the network's configuration, its flat
 * parameters, the optimizer's flat state, and the iteration and epoch counters schedules read.
 *
 * @param configurationJson Deeplearning4j's JSON of the network configuration
 * @param parameters the flat parameter vector
 * @param updaterState the flat optimizer state (empty for plain SGD)
 * @param iteration the number of steps applied so far
 * @param epoch the number of epochs completed
 */
public record ModelState(
    String configurationJson, float[] parameters, float[] updaterState, int iteration, int epoch)
    implements Serializable {

  /**
   * A checksum of everything the state holds: equal for two states, or a state and a replica
   * ({@link Replica#fingerprint()}), exactly when they hold the same bits (up to a 64-bit
   * checksum's chance).
   *
   * @return CRC-32 and CRC-32C over the parameters, the optimizer state, the counters and the
   *     configuration
   */
  public long fingerprint() {
    final Fingerprint fingerprint = new Fingerprint();
    fingerprint.add(parameters);
    fingerprint.add(updaterState);
    return fingerprint.finish(iteration, epoch, configurationJson);
  }
}
