package io.lockstep.worker.engine;

/** One unit of a plan's work: a primitive on the stream, or Java between primitives. */
interface Action {
  void run();
}
