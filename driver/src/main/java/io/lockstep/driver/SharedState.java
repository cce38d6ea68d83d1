package io.lockstep.driver;

import io.lockstep.worker.ModelState;
import io.lockstep.worker.StateSource;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;

/**
 * The state the job's stages start from, shared with the executors as a Spark broadcast: a stage's
 * task carries only the state's fingerprint and the broadcast's id, and only an executor whose
 * replica does not hold that state already reads the broadcast. One broadcast per state, kept over
 * a stage's retries; the previous one is destroyed, on the driver and every executor, as soon as
 * the state moves on, and the last when the job ends.
 */
final class SharedState implements AutoCloseable {
  private final JavaSparkContext spark;
  private ModelState state;
  private Broadcast<ModelState> broadcast;
  private StateSource source;

  SharedState(JavaSparkContext spark) {
    this.spark = spark;
  }

  /**
   * @param current the state the next stage starts from
   * @return where its workers get {@code current}
   */
  StateSource source(ModelState current) {
    if (current != state) {
      destroy();
      broadcast = spark.broadcast(current);
      state = current;
      source = new Broadcasted(broadcast, current.fingerprint());
    }
    return source;
  }

  @Override
  public void close() {
    destroy();
  }

  private void destroy() {
    if (broadcast != null) {
      broadcast.destroy();
      broadcast = null;
      state = null;
      source = null;
    }
  }

  /** A state that executors read from a broadcast when they need it. */
  private record Broadcasted(Broadcast<ModelState> broadcast, long fingerprint)
      implements StateSource {
    @Override
    public ModelState fetch() {
      return broadcast.value();
    }
  }
}
