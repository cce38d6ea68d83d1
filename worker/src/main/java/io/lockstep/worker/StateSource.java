package io.lockstep.worker;

import java.io.Serializable;

/**
 * Where a stage's workers get the replica they start from. A stage ships only the state's
 * fingerprint to every worker; a worker whose replica from the last stage already holds exactly
 * that state trains on from it, and only a worker without one (the first stage, a new executor, a
 * retry after a failure) fetches the state itself. Large models so cross the network once per job,
 * not once per stage and executor, and a stage's start allocates nothing of the model's size.
 */
public interface StateSource extends Serializable {
  /**
   * @return {@link ModelState#fingerprint()} of the state {@link #fetch} returns
   */
  long fingerprint();

  /**
   * @return the state, fetched from wherever the driver keeps it
   */
  ModelState fetch();

  /**
   * A source that carries the state itself: for tests and for workers in the driver's JVM.
   *
   * @param state the state
   * @return a source holding {@code state}
   */
  static StateSource of(ModelState state) {
    return new Held(state, state.fingerprint());
  }

  /** A state carried along with the task. */
  record Held(ModelState state, long fingerprint) implements StateSource {
    @Override
    public ModelState fetch() {
      return state;
    }
  }
}
