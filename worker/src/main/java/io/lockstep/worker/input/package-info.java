/**
 * A worker's input: the datasets a job names ({@link io.lockstep.worker.input.Datasets}), read as
 * {@link io.lockstep.worker.input.Samples} (IDX files, CIFAR-10 batches, image folders, generated
 * scenes and phrases), made into one rank's slice of each step by a {@link
 * io.lockstep.worker.input.Prefetcher} on the rank's data thread while the previous step computes.
 */
package io.lockstep.worker.input;
