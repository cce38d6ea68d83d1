package io.lockstep.conf;

/**
 * What a synchronous job does when the cluster offers fewer task slots than it has workers, after a
 * stage failed because an executor or its host was lost: the global batch keeps its {@code
 * lockstep.workers} slices, and the workers that remain compute the lost ones' slices too.
 */
public enum Elasticity {
  /** The run fails as a stage does that cannot run: the cluster must offer every worker's slot. */
  OFF,
  /** The run goes on with the workers the cluster can still place, and never takes more. */
  SHRINK,
  /** As {@link #SHRINK}, and it takes workers back, up to the job's, at a stage boundary. */
  GROW
}
